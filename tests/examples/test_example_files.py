"""The customer_support and seed examples' files: generated data, scripts, templates, schemas and
workflow files are consistent with each other, and the seed's workflow is the handbook's text."""

from __future__ import annotations

import collections
import importlib.util
import json
import shutil
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import jinja2
import pytest
import yaml
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jsonschema import Draft202012Validator

from relayflow.spec.loader import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SUPPORT = EXAMPLES / "customer_support"
SEED = EXAMPLES / "seed"
TICKET_FIELDS = ["id", "channel", "customer", "subject", "body", "created_at", "intent"]
SEED_YAML = """\
workflow:
  - name: DataIngestAgent
    type: retrieval
    source: "s3://customer-data/"
  - name: PreprocessAgent
    type: transform
    script: preprocess.py
  - name: LLMInferenceAgent
    type: inference
    model: "gpt-5x"
    prompt_template: "templates/query_prompt.jinja"
  - name: ValidationAgent
    type: quality_check
    ruleset: "validators/schema_v2.json"
  - name: FeedbackLoopAgent
    type: retrain
    trigger: "performance_drop"
"""


def _module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copies of the examples' scripts: importing them writes bytecode beside them."""
    folder = tmp_path_factory.mktemp("scripts")
    for name in ("make_tickets.py", "ticket_phrases.py", "preprocess.py"):
        shutil.copy(SUPPORT / name, folder / name)
    shutil.copy(SEED / "preprocess.py", folder / "seed_preprocess.py")
    shutil.copy(SEED / "upload_to_s3.py", folder / "upload_to_s3.py")
    return folder


@pytest.fixture(scope="module")
def preprocess(scripts: Path) -> ModuleType:
    return _module(scripts / "preprocess.py", "customer_support_preprocess_under_test")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _labels() -> list[str]:
    spec = yaml.safe_load((SUPPORT / "workflow.yaml").read_text(encoding="utf-8"))
    step = next(s for s in spec["workflow"] if s["name"] == "ClassifyIntent")
    labels: list[str] = step["labels"]
    return labels


def _schema(path: Path) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def test_generator_reproduces_the_committed_data_byte_for_byte(
    scripts: Path, tmp_path: Path
) -> None:
    make_tickets = _module(scripts / "make_tickets.py", "make_tickets_under_test")
    tickets, golden = make_tickets.write_tickets(tmp_path / "data")
    assert tickets.read_bytes() == (SUPPORT / "data" / "tickets.jsonl").read_bytes()
    assert golden.read_bytes() == (SUPPORT / "data" / "golden.jsonl").read_bytes()


def test_tickets_are_many_varied_and_cover_every_intent() -> None:
    tickets = _jsonl(SUPPORT / "data" / "tickets.jsonl")
    assert len(tickets) >= 300
    assert all(list(t) == TICKET_FIELDS for t in tickets)
    counts = collections.Counter(t["intent"] for t in tickets)
    assert sorted(counts) == sorted(_labels())
    assert min(counts.values()) >= 20
    assert len({t["id"] for t in tickets}) == len(tickets)
    assert len({t["body"] for t in tickets}) == len(tickets)
    assert {t["channel"] for t in tickets} == {"email", "chat", "web"}
    assert len({t["customer"] for t in tickets}) >= 100
    stamps = [t["created_at"] for t in tickets]
    assert stamps == sorted(stamps)
    # some need the preprocessing: quoted replies, signatures, bodies over the 600-char cut
    assert any("wrote:" in t["body"] for t in tickets)
    assert any("Sent from my" in t["body"] for t in tickets)
    assert any(len(t["body"]) > 600 for t in tickets)


def test_golden_set_labels_every_ticket_and_holds_out_twelve_per_intent() -> None:
    tickets = _jsonl(SUPPORT / "data" / "tickets.jsonl")
    golden = _jsonl(SUPPORT / "data" / "golden.jsonl")
    assert [(g["id"], g["intent"]) for g in golden] == [(t["id"], t["intent"]) for t in tickets]
    holdout = collections.Counter(g["intent"] for g in golden if g["split"] == "holdout")
    assert holdout == dict.fromkeys(_labels(), 12)
    assert {g["split"] for g in golden} == {"holdout", "dev"}


def test_preprocess_keeps_what_the_model_needs_and_the_label_apart(
    preprocess: ModuleType,
) -> None:
    record = {
        "id": "T-9",
        "channel": "email",
        "customer": "Ana Silva",
        "subject": "Re:  Refund   for order #NW-1",
        "body": "Hi,\n\nI returned   the kettle.\tWhere is my money?\n\nKind regards,\nAna Silva\n"
        "+1 555-0100\n\nOn Mon, March 3 at 9:12, Northwind Support <s@n.example> wrote:\n"
        "> We got your request.",
        "created_at": "2025-03-03T09:00:00Z",
        "intent": "billing_refund",
    }
    out = preprocess.transform(record)
    assert out == {
        "id": "T-9",
        "channel": "email",
        "customer": "Ana Silva",
        "text": "Refund for order #NW-1\nHi, I returned the kettle. Where is my money?",
        "expected": "billing_refund",
    }


def test_preprocess_truncates_long_bodies_and_copes_without_a_label(
    preprocess: ModuleType,
) -> None:
    out = preprocess.transform({"id": 7, "body": "word " * 400, "subject": ""})
    assert out["id"] == "7" and out["expected"] is None and out["channel"] == "web"
    assert out["text"].endswith(" …") and len(out["text"]) <= 602
    assert "\n" not in out["text"]


def test_preprocess_cleans_every_committed_ticket(preprocess: ModuleType) -> None:
    for ticket in _jsonl(SUPPORT / "data" / "tickets.jsonl"):
        out = preprocess.transform(ticket)
        text = out["text"]
        assert out["expected"] == ticket["intent"]
        assert len(text) <= len(ticket["subject"]) + 1 + 602
        for leftover in ("wrote:", "Original Message", "Sent from my", "regards,", "\n>"):
            assert leftover not in text, (ticket["id"], text)
        assert "  " not in text


@pytest.mark.parametrize(
    ("template", "allowed"),
    [
        (SUPPORT / "templates" / "intent.jinja", {"text"}),
        (SUPPORT / "templates" / "reply.jinja", {"text", "intent", "customer"}),
        (SEED / "templates" / "query_prompt.jinja", {"text", "question"}),
    ],
)
def test_templates_parse_and_never_read_the_gold_label(template: Path, allowed: set[str]) -> None:
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    source = template.read_text(encoding="utf-8")
    used = meta.find_undeclared_variables(env.parse(source))
    assert used <= allowed and "text" in used


def test_intent_template_glosses_exactly_the_workflow_labels() -> None:
    source = (SUPPORT / "templates" / "intent.jinja").read_text(encoding="utf-8")
    glossed = [line.split(" - ")[0] for line in source.splitlines() if " - " in line]
    assert glossed == _labels()


def test_templates_render_a_preprocessed_ticket(preprocess: ModuleType) -> None:
    env = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    ticket = preprocess.transform(_jsonl(SUPPORT / "data" / "tickets.jsonl")[0])
    intent = env.from_string((SUPPORT / "templates" / "intent.jinja").read_text("utf-8"))
    assert ticket["text"] in intent.render(**ticket)
    reply = env.from_string((SUPPORT / "templates" / "reply.jinja").read_text("utf-8"))
    rendered = reply.render(**ticket, intent="shipping_delay")
    assert "shipping delay" in rendered and ticket["customer"] in rendered
    assert ticket["text"] in reply.render(text=ticket["text"], intent="upgrade_plan")


@pytest.mark.parametrize(
    "path", [SUPPORT / "validators" / "reply_schema.json", SEED / "validators" / "schema_v2.json"]
)
def test_schemas_are_valid_draft_2020_12(path: Path) -> None:
    schema = _schema(path)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_reply_schema_accepts_a_triaged_ticket_and_rejects_a_wrong_one(
    preprocess: ModuleType,
) -> None:
    schema = _schema(SUPPORT / "validators" / "reply_schema.json")
    assert schema["properties"]["intent"]["enum"] == _labels()
    validator = Draft202012Validator(schema)
    handoff = {
        **preprocess.transform(_jsonl(SUPPORT / "data" / "tickets.jsonl")[0]),
        "intent": "account_delete",
        "reply": "Hi Mei, thank you for writing. We will delete your account and confirm by "
        "email once it is done.\nNorthwind Support",
    }
    assert list(validator.iter_errors(handoff)) == []
    for broken in (
        {**handoff, "intent": "delete_account"},
        {**handoff, "reply": "Thanks!"},
        {**handoff, "reply": "x" * 1201},
        {k: v for k, v in handoff.items() if k != "reply"},
    ):
        assert not validator.is_valid(broken)


def test_seed_workflow_is_the_handbook_text_byte_for_byte() -> None:
    assert (SEED / "workflow.yaml").read_bytes() == SEED_YAML.encode("utf-8")


@pytest.mark.parametrize("workflow", [SUPPORT / "workflow.yaml", SEED / "workflow.yaml"])
def test_workflows_load_with_every_file_they_name(workflow: Path) -> None:
    loaded = load_spec(workflow)
    assert loaded.agents[0].type == "retrieval"


def test_seed_records_flow_into_a_valid_handoff(scripts: Path) -> None:
    transform = _module(scripts / "seed_preprocess.py", "seed_preprocess_under_test").transform
    records = [
        r for p in sorted((SEED / "data" / "customer-data").glob("*.jsonl")) for r in _jsonl(p)
    ]
    assert 5 <= len(records) <= 10
    validator = Draft202012Validator(_schema(SEED / "validators" / "schema_v2.json"))
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    prompt = env.from_string((SEED / "templates" / "query_prompt.jinja").read_text("utf-8"))
    for record in records:
        item = transform(record)
        assert set(item) == {"id", "customer_id", "question", "text"}
        assert item["question"] in prompt.render(**item) and item["text"]
        assert validator.is_valid({**item, "output": "Within 5 business days."})
        assert not validator.is_valid(item)


def test_seed_upload_fills_the_bucket_the_workflow_reads(
    scripts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("boto3", reason="boto3 (extra: s3) is missing")
    pytest.importorskip("s3fs", reason="s3fs (extra: s3) is missing")
    server_mod = pytest.importorskip("moto.server", reason="moto[server] (extra: dev) is missing")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # moto keeps its buckets per process, not per server: start from an empty S3
        urllib.request.urlopen(
            urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10
        ).close()
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }.items():
            monkeypatch.setenv(key, value)
        upload = _module(scripts / "upload_to_s3.py", "seed_upload_under_test").upload
        data = SEED / "data" / "customer-data"  # the copied script sits apart from the data
        local = sorted(p.name for p in data.glob("*.jsonl"))
        assert upload(endpoint, folder=data) == local
        assert upload(endpoint, folder=data) == local  # a second upload reuses the bucket

        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        assert sorted(Path(p).name for p in fs.ls("customer-data/")) == local
        first = fs.cat(f"customer-data/{local[0]}")
        assert first == (data / local[0]).read_bytes()
    finally:
        server.stop()
