"""Learned models end to end on a real SQLite store: before a first fit the learned provider
passes every item on (a person decides); a fit from a labelled history file, carried through the
workflow's own cleaning step, is judged on the golden holdout (never trained on) and promoted
into the model file; from then on the workflow answers the held-out items itself, and the gate
says whose confidence it read. People's labels in the store are learned from too."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import relayflow
from relayflow.learn.retrain import RetrainOutcome, RetrainRequest, run_retrain
from relayflow.store.registry import Registry
from relayflow.store.sql_store import SqlStore
from tests.learn.topics import TOPICS, corpus

pytest.importorskip("sklearn", reason="scikit-learn (extra: learn) is missing")
pytest.importorskip("skops", reason="skops (extra: learn) is missing")

WORKFLOW = """\
name: topics
models:
  topic_model:
    provider: learned
    model: models/topic.skops
    featurizer: tfidf
evaluate:
  golden: golden.jsonl
  metric: accuracy
  key: id
  prediction: topic
  reference: topic
workflow:
  - name: Load
    type: retrieval
    source: items.jsonl
  - name: Clean
    type: transform
    script: clean.py
    run_in: inline
  - name: Classify
    type: inference
    model: topic_model
    prompt: "What is this message about? {{ text }}"
    output: label
    labels: [cooking, football, music, weather]
    output_field: topic
  - name: Gate
    type: quality_check
    confidence_of: Classify
    min_confidence: 0.5
  - name: Review
    type: human_review
    confidence_of: Classify
"""

CLEAN = """\
def transform(record):
    # the raw message is shouted; the model sees it cleaned, under another name
    return {"id": record["id"], "text": " ".join(record["message"].lower().split())}
"""


def project(tmp_path: Path) -> tuple[Path, list[dict[str, Any]], list[dict[str, Any]]]:
    """A workflow, a history file of raw labelled messages (dev and holdout ids), and the
    golden file that marks which are held out; returns the dev and holdout records."""
    texts, labels = corpus(24, seed=1)
    records = [
        {"id": f"m{i:03d}", "message": f"  {text.upper()}  ", "topic": label}
        for i, (text, label) in enumerate(zip(texts, labels, strict=True))
    ]
    holdout = records[1::4]
    dev = [r for r in records if r not in holdout]
    golden = [
        {"id": r["id"], "topic": r["topic"], "split": "holdout" if r in holdout else "dev"}
        for r in records
    ]
    (tmp_path / "workflow.yaml").write_text(WORKFLOW)
    (tmp_path / "clean.py").write_text(CLEAN)
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in holdout))
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "golden.jsonl").write_text("".join(json.dumps(g) + "\n" for g in golden))
    return tmp_path / "workflow.yaml", dev, holdout


def retrain(workflow: Path, store: str, **options: Any) -> RetrainOutcome:
    request = RetrainRequest(relayflow.load_workflow(workflow), store, **options)
    return asyncio.run(run_retrain(request))


def run(workflow: Path, store: str, rows: list[dict[str, Any]]) -> list[Any]:
    loaded = relayflow.load_workflow(workflow)

    async def scenario() -> list[Any]:
        async with relayflow.Runner(loaded, store=store) as runner:
            return [await runner.run(row, item_key=row["id"]) for row in rows]

    return asyncio.run(scenario())


def test_before_a_first_fit_every_item_goes_to_a_person(tmp_path: Path) -> None:
    workflow, _dev, holdout = project(tmp_path)
    results = run(workflow, str(tmp_path / "runs.db"), holdout[:3])
    assert [r.status for r in results] == ["waiting_review"] * 3
    assert all(r.error == "Classify confidence 0 < 0.5" for r in results)


def test_a_fit_from_history_is_judged_on_the_holdout_and_answers_it(tmp_path: Path) -> None:
    workflow, dev, holdout = project(tmp_path)
    store = str(tmp_path / "runs.db")

    outcome = retrain(workflow, store, history=tmp_path / "history.jsonl")

    assert outcome.kind == "learned" and outcome.decision == "promoted"
    assert outcome.train_rows == len(dev)  # no holdout record was learned from
    assert outcome.scores.n == len(holdout) and "holdout split" in outcome.scores.source
    assert outcome.scores.candidate >= 0.9 and outcome.scores.parent == 0.0
    assert (tmp_path / "models" / "topic.skops").is_file()
    with Registry(store, workflow="topics") as registry:
        version = registry.production("topic_model")
        assert version is not None and version.version == outcome.candidate
        card = registry.get("topic_model", outcome.candidate).card
    assert card["data"]["per_label"] == {
        label: sum(r["topic"] == label for r in dev) for label in TOPICS
    }
    assert card["data"]["label_sources"] == {"history": len(dev)}
    low, high = card["golden_interval"]["candidate"]
    assert low <= outcome.scores.candidate <= high

    results = run(workflow, store, holdout)
    answered = [r for r in results if r.status == "succeeded"]
    assert len(answered) >= 0.8 * len(holdout)
    right = sum(r.output["topic"] == h["topic"] for r, h in zip(results, holdout, strict=True)
                if r.status == "succeeded")  # fmt: skip
    assert right >= 0.95 * len(answered)


def test_a_person_s_labels_in_the_store_are_learned_from(tmp_path: Path) -> None:
    workflow, dev, _holdout = project(tmp_path)
    store = str(tmp_path / "runs.db")
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dev))
    results = run(workflow, store, dev)  # nothing learned yet: every run waits for a person
    writer = SqlStore(store)
    try:
        for result, row in zip(results, dev, strict=True):
            writer.add_feedback("topics", {"topic": row["topic"]}, run_id=result.run_id)
    finally:
        writer.close()

    outcome = retrain(workflow, store)  # no history: only the people's labels

    assert outcome.decision == "promoted"
    # no holdout run to judge by: a fixed share of the labelled rows held out by key judges
    assert outcome.scores.source.startswith("held out")
    with Registry(store, workflow="topics") as registry:
        card = registry.get("topic_model", outcome.candidate).card
    assert card["data"]["label_sources"] == {"manual": outcome.train_rows}


def test_too_few_labels_is_a_clear_refusal(tmp_path: Path) -> None:
    workflow, dev, _holdout = project(tmp_path)
    few = tmp_path / "few.jsonl"
    few.write_text("".join(json.dumps(r) + "\n" for r in dev[:4]))
    with pytest.raises(relayflow.RelayflowError, match="labelled rows to learn from"):
        retrain(workflow, str(tmp_path / "runs.db"), history=few)
    assert not (tmp_path / "models" / "topic.skops").exists()


def test_reviews_refit_the_model_while_the_workflow_runs(tmp_path: Path) -> None:
    workflow, dev, _holdout = project(tmp_path)
    workflow.write_text(
        workflow.read_text()
        + "  - name: Learn\n    type: retrain\n    trigger: new_labels\n    every: 30\n"
        "    target: topic_model\n"
    )
    store = str(tmp_path / "runs.db")
    loaded = relayflow.load_workflow(workflow)
    answer = {row["id"]: row["topic"] for row in dev}

    async def scenario() -> tuple[list[bool], Any]:
        async with relayflow.Runner(loaded, store=store) as runner:
            learn: Any = next(n.agent for n in runner.plan.nodes if n.name == "Learn")
            parked = []
            for row in dev:
                result = await runner.run(row, item_key=row["id"])
                parked.append(result.status == "waiting_review")
                if result.status == "waiting_review":  # a person gives the right topic
                    assert runner.store is not None
                    steps = {s.step: s for s in runner.store.steps(result.run_id)}
                    output = dict(steps["Review"].output or {})
                    result = await runner.decide(
                        result.run_id, "Review", "correct",
                        {**output, "topic": answer[row["id"]]}, "tester",
                    )  # fmt: skip
                assert result.status == "succeeded"
                await learn.wait()  # the fit runs in the background; here we wait to see it
            return parked, learn

    parked, learn = asyncio.run(scenario())

    assert learn.outcomes and learn.outcomes[0].decision == "promoted"
    assert learn.outcomes[0].train_rows >= 20  # the 30 labels, less the ones held out to judge
    assert (tmp_path / "models" / "topic.skops").is_file()
    # until 30 labels were in, everything needed a person; after the fit, most did not
    assert all(parked[:30])
    assert sum(parked[30:]) < len(parked[30:]) / 2
