"""The handbook's own workflow end to end: its YAML unchanged, `gpt-5x` mapped under `models:`
by a file that extends it (the local llama.cpp model, or an OpenAI-compatible server), records
read from S3 (moto), every record through all five agents with reviews through the CLI, and a
drop in the reviewers' agreement that retrains the prompt and lets the golden set decide."""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner, Result

import relayflow
from relayflow.learn.prompt_job import BEGIN
from relayflow.learn.retrain_agent import RetrainAgent
from relayflow.store.checkpoints import load_state
from relayflow.store.database import open_database
from relayflow.store.registry import Registry
from relayflow.store.sql_store import SqlStore
from tests.providers.conftest import gguf, llama_server  # noqa: F401  (fixtures)

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed"
AGENTS = [
    "DataIngestAgent",
    "PreprocessAgent",
    "LLMInferenceAgent",
    "ValidationAgent",
    "FeedbackLoopAgent",
]

pytest.importorskip("llama_cpp", reason="llama-cpp-python (extra: llm) runs the local model")
pytest.importorskip("river", reason="river (extra: examples) provides the drift detectors")
pytest.importorskip("rouge_score", reason="rouge-score (extra: examples) scores free text")


def _records(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(folder.glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def _module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _labels() -> dict[str, str]:
    return {r["id"]: r["expected"] for r in _records(SEED / "data") if "expected" in r}


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    """A copy of examples/seed (a promotion rewrites the prompt template in place)."""
    return Path(shutil.copytree(SEED, tmp_path / "seed", ignore=shutil.ignore_patterns("*.pyc")))


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    pytest.importorskip("s3fs", reason="s3fs (extra: s3) is missing")
    pytest.importorskip("boto3", reason="boto3 (extra: s3) is missing")
    server_mod = pytest.importorskip("moto.server", reason="moto[server] (extra: dev) is missing")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """s3://customer-data/ filled by the seed's own upload script; AWS_* point at moto."""
    # moto keeps its buckets per process, not per server: start from an empty S3
    reset = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).close()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    keys: list[str] = _module(SEED / "upload_to_s3.py", "seed_upload").upload(moto_endpoint)
    return keys


class Cli:
    """`relayflow` in the folder above the seed's copy, with one store."""

    def __init__(self, folder: Path) -> None:
        self.store = folder / "runs.db"
        self._runner = CliRunner()

    def __call__(self, *args: object) -> Result:
        argv = [str(a) for a in args]
        result = self._runner.invoke(
            relayflow_app(), argv, env={"COLUMNS": "200", "RELAYFLOW_STORE": str(self.store)}
        )
        assert result.exit_code == 0, f"relayflow {' '.join(argv)}:\n{result.output}"
        return result

    @contextmanager
    def reader(self) -> Iterator[SqlStore]:
        store = SqlStore(str(self.store))
        try:
            yield store
        finally:
            store.close()


def relayflow_app() -> Any:
    from relayflow.cli import app

    return app


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RELAYFLOW_DEBUG", raising=False)
    return Cli(tmp_path)


def test_the_seed_runs_from_s3_through_all_five_agents_with_gpt5x_on_the_local_model(
    seed: Path, bucket: list[str], cli: Cli
) -> None:
    assert (seed / "workflow.yaml").read_bytes() == (SEED / "workflow.yaml").read_bytes()
    assert "seed/local.yaml (5 agents)" in cli("validate", "seed/local.yaml").output
    records = _records(SEED / "data" / "customer-data")
    assert len(bucket) == 2 and len(records) == 8

    ran = _json_lines(cli("run", "seed/local.yaml", "--json", "--concurrency", "2").output)

    assert sorted(r["item"].split(":", 1)[1] for r in ran) == [r["id"] for r in records]
    statuses = collections.Counter(r["status"] for r in ran)
    assert set(statuses) <= {"waiting_review", "succeeded"}, statuses
    schema = Draft202012Validator(json.loads((SEED / "validators/schema_v2.json").read_text()))
    with cli.reader() as store:
        for r in ran:
            steps = {s.step: s for s in store.steps(r["run_id"])}
            run = store.get_run(r["run_id"])
            assert run is not None and run.workflow == "seed"
            for name in AGENTS[:3]:
                assert steps[name].status == "finished", (name, steps[name].error)
            answer = steps["LLMInferenceAgent"].output
            assert answer is not None and answer["output"] == answer["output"].strip()
            # gpt-5x is the llama.cpp model that `models:` in local.yaml names
            assert steps["LLMInferenceAgent"].versions["model"] == "gpt-5x"
            assert "SmolLM2" in steps["LLMInferenceAgent"].versions["model_version"]
            valid = schema.is_valid(answer)
            if r["status"] == "succeeded":
                confidence = steps["ValidationAgent"].confidence
                assert valid and confidence is not None and confidence >= 0.85
            else:
                # the small model's confidence is under 0.85 (or its answer breaks the schema):
                # the run waits for a person at ValidationAgent, with the reason
                assert r["step"] == "ValidationAgent" and steps["ValidationAgent"].status == (
                    "escalated"
                )
                assert (valid and "< 0.85" in r["error"]) or (not valid and r["error"]), r

    # reviewers decide through the CLI: approve half, correct the rest from the labels
    labels = _labels()
    waiting = [r for r in ran if r["status"] == "waiting_review"]
    for index, r in enumerate(waiting):
        review = f"{r['run_id']}:ValidationAgent"
        if index % 2 == 0:
            cli("review", "approve", review)
        else:
            key = r["item"].split(":", 1)[1]
            cli("review", "correct", review, "--set", f"output={labels[key]}")

    with cli.reader() as store:
        for r in ran:
            steps = {s.step: s for s in store.steps(r["run_id"])}
            assert [s for s in AGENTS if steps[s].status == "finished"] == AGENTS
            run = store.get_run(r["run_id"])
            assert run is not None and run.status == "succeeded"
    engine = open_database(str(cli.store))
    try:
        state = load_state(engine, "seed", "FeedbackLoopAgent")
    finally:
        engine.dispose()
    # every reviewed run was observed: an approval agrees with the model, a correction less
    assert state is not None and state["monitor"]["metric"] == "rouge"
    history = state["monitor"]["history"]
    assert len(history) == len(waiting)
    assert history[0::2] == [1.0] * len(history[0::2])
    assert all(value < 1.0 for value in history[1::2])


def test_gpt5x_mapped_to_an_openai_compatible_server_runs_the_seed(
    seed: Path,
    bucket: list[str],
    cli: Cli,
    llama_server: str,  # noqa: F811
) -> None:
    (seed / "server.yaml").write_text(
        "extends: workflow.yaml\n"
        "models:\n"
        "  gpt-5x:\n"
        "    provider: openai\n"
        "    model: smollm2\n"
        f"    base_url: {llama_server}\n"
    )
    ran = _json_lines(cli("run", "seed/server.yaml", "--json", "--limit", "2").output)

    assert len(ran) == 2
    with cli.reader() as store:
        for r in ran:
            steps = {s.step: s for s in store.steps(r["run_id"])}
            inference = steps["LLMInferenceAgent"]
            assert inference.status == "finished" and inference.model_calls == 1
            assert inference.output is not None and inference.output["output"]
            assert inference.versions["model"] == "gpt-5x"
            assert inference.versions["model_version"] == "smollm2"
            assert r["status"] in ("waiting_review", "succeeded")
            assert r["status"] == "succeeded" or r["step"] == "ValidationAgent"


#: reviewers approve this many runs (they agree with the model), then start correcting them
AGREEING = 56
#: at most this many corrected runs follow; the retrain must start before they run out
DISAGREEING = 150


def test_a_drop_in_the_reviewers_agreement_retrains_the_seed_prompt_and_the_golden_set_decides(
    seed: Path, tmp_path: Path
) -> None:
    workflow = relayflow.load_workflow(seed / "local.yaml")
    store = str(tmp_path / "runs.db")
    records = _records(seed / "data" / "customer-data")
    labels = _labels()
    transform = _module(seed / "preprocess.py", "seed_preprocess_stream").transform
    template = seed / "templates" / "query_prompt.jinja"
    before = template.read_bytes()

    async def stream() -> tuple[list[dict[str, Any]], RetrainAgent]:
        outputs: list[dict[str, Any]] = []
        async with relayflow.Runner(workflow, store=store) as runner:
            agent = runner.plan.node("FeedbackLoopAgent").agent
            assert isinstance(agent, RetrainAgent)
            for index in range(AGREEING + DISAGREEING):
                record = records[index % len(records)]
                result = await runner.run(record)
                # the same questions come back: the step cache answers them after the first
                assert result.status == "waiting_review", result
                if index < AGREEING:
                    result = await runner.decide(result.run_id, "ValidationAgent", "approve")
                else:
                    # the reviewer rewrites the answer of the handoff that waits for them
                    answer = {**transform(record), "output": labels[record["id"]]}
                    result = await runner.decide(
                        result.run_id, "ValidationAgent", "correct", answer
                    )
                assert result.status == "succeeded" and result.output is not None
                outputs.append(dict(result.output))
                if result.output.get("retrain_requested"):
                    break
            await agent.wait()
            return outputs, agent

    outputs, agent = asyncio.run(stream())

    assert not any(o.get("retrain_requested") for o in outputs[:AGREEING])
    assert outputs[-1].get("retrain_requested"), "no retrain within the disagreeing runs"
    reason = outputs[-1]["retrain_reason"]
    # the window before the alarm mixes the last agreeing runs with the first corrected ones
    found = re.fullmatch(
        r"drift detected \(adwin\) and rouge (\S+) over the last 50 labelled items is under "
        r"before the change (\S+)",
        reason,
    )
    assert found is not None, reason
    assert float(found.group(1)) < float(found.group(2)) <= 1.0
    assert agent.errors == []
    [outcome] = agent.outcomes
    assert (outcome.kind, outcome.name) == ("prompt", "LLMInferenceAgent")
    scores = outcome.scores
    assert (scores.metric, scores.n) == ("rouge", 6) and scores.source.startswith("file: ")
    assert scores.source.endswith("golden.jsonl")
    # promoted only when strictly better on the golden set; production stays otherwise
    assert outcome.decision == ("promoted" if scores.candidate > scores.parent else "rejected")
    with Registry(store) as registry:
        candidate = registry.get("LLMInferenceAgent", outcome.candidate)
        production = registry.production("LLMInferenceAgent")
        events = [action for action, _, _, _ in registry.events("LLMInferenceAgent")]
    assert candidate.parent == outcome.parent and candidate.kind == "prompt"
    assert candidate.metrics["golden"] == scores.as_dict()
    assert candidate.card["trigger"] == "performance_drop"
    assert candidate.card["data"]["examples"] == 5
    # the new version's few-shot block holds the reviewers' corrected answers
    text = candidate.artifact  # a prompt version's artifact is its text
    assert text.startswith(BEGIN) and text.endswith(before.decode())
    assert sum(answer in text for answer in labels.values()) == 5
    assert production is not None
    if outcome.decision == "promoted":
        assert production.version == outcome.candidate and template.read_text() == text
        assert events[-1] == "promote"
    else:
        assert candidate.status == "rejected" and events[-1] == "reject"
        assert production.version == outcome.parent and template.read_bytes() == before
    # the handbook's YAML is never touched: only the prompt file is versioned
    assert (seed / "workflow.yaml").read_bytes() == (SEED / "workflow.yaml").read_bytes()
