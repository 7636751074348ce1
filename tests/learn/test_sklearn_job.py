"""Retraining jobs on a real SQLite store filled by real runs: the golden set decides between the
refitted candidate and production; labels from feedback win over carried ones; targets resolve."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import relayflow
from relayflow.errors import RelayflowError
from relayflow.learn.data import Fields, labelled_rows
from relayflow.learn.retrain import RetrainOutcome, RetrainRequest, resolve_target, run_retrain
from relayflow.store.registry import Registry
from relayflow.store.sql_store import SqlStore
from tests.learn import synthetic as syn

pytest.importorskip("sklearn", reason="scikit-learn (extra: sklearn) is missing")


def _retrain(workflow: Path, store: str, **options: object) -> RetrainOutcome:
    request = RetrainRequest(relayflow.load_workflow(workflow), store, **options)  # type: ignore[arg-type]
    return asyncio.run(run_retrain(request))


def test_a_candidate_that_wins_on_the_held_out_rows_is_promoted(tmp_path: Path) -> None:
    workflow = syn.project(tmp_path, trigger="manual")
    store = str(tmp_path / "runs.db")
    syn.run_items(workflow, store, syn.items(120, "b", seed=5))
    model_file = tmp_path / "model" / "fraud.joblib"
    fresh = syn.items(50, "b", seed=99)
    assert syn.predict(model_file, fresh) != [r["expected"] for r in fresh]

    outcome = _retrain(workflow, store)

    assert outcome.decision == "promoted" and outcome.kind == "sklearn" and outcome.name == "fraud"
    assert outcome.scores.candidate > outcome.scores.parent
    assert outcome.scores.metric == "f1" and outcome.scores.source.startswith("held out")
    assert outcome.train_rows + outcome.golden_rows == 120
    with Registry(store) as registry:
        production = registry.production("fraud")
        parent = registry.get("fraud", outcome.parent)
    assert production is not None and production.version == outcome.candidate
    assert model_file.read_bytes() == Path(production.artifact).read_bytes()
    assert syn.predict(model_file, fresh) == [r["expected"] for r in fresh]
    assert parent.status == "archived" and parent.card["source"].startswith("adopted from")
    card = json.loads(Path(production.artifact).with_suffix(".card.json").read_text())
    assert card["parent"] == outcome.parent and card["decision"] == "promoted"
    assert card["data"]["train_rows"] == outcome.train_rows
    assert card["data"]["label_sources"] == {"carried": outcome.train_rows}
    assert card["golden"]["candidate"] == pytest.approx(outcome.scores.candidate, abs=1e-6)
    assert card["estimator"] == "DecisionTreeClassifier" and card["features"] == ["x1", "x2"]
    assert {"relayflow", "scikit-learn", "python"} <= set(card["versions"])
    assert production.card == card


def test_a_candidate_that_loses_on_the_golden_file_is_rejected(tmp_path: Path) -> None:
    # the golden file says concept a is right: the flipped labels of the runs are wrong
    workflow = syn.project(tmp_path, trigger="manual", golden=syn.items(40, "a", seed=7))
    store = str(tmp_path / "runs.db")
    syn.run_items(workflow, store, syn.items(80, "b", seed=5))
    model_file = tmp_path / "model" / "fraud.joblib"
    before = model_file.read_bytes(), model_file.stat().st_mtime_ns

    outcome = _retrain(workflow, store)

    assert outcome.decision == "rejected"
    assert outcome.scores.candidate < outcome.scores.parent
    assert outcome.golden_rows == 40 and outcome.scores.source.startswith("file: ")
    assert outcome.train_rows == 80 and outcome.production == outcome.parent
    assert (model_file.read_bytes(), model_file.stat().st_mtime_ns) == before
    with Registry(store) as registry:
        assert registry.get("fraud", outcome.candidate).status == "rejected"
        production = registry.production("fraud")
    assert production is not None and production.version == outcome.parent


def test_too_few_labelled_runs_say_what_to_do(tmp_path: Path) -> None:
    workflow = syn.project(tmp_path, trigger="manual")
    store = str(tmp_path / "runs.db")
    syn.run_items(workflow, store, syn.items(12, "b", seed=5))
    with pytest.raises(RelayflowError, match=r"(golden rows|labelled runs).*label"):
        _retrain(workflow, store)


def test_feedback_labels_win_over_the_labels_items_carried(tmp_path: Path) -> None:
    workflow = syn.project(tmp_path, trigger="manual")
    store = str(tmp_path / "runs.db")
    rows = syn.items(6, "a", seed=5)
    results = syn.run_items(workflow, store, rows)
    writer = SqlStore(store)
    try:
        flipped = "legit" if rows[0]["expected"] == "phishing" else "phishing"
        writer.add_feedback("synthetic_fraud", {"prediction": flipped}, run_id=results[0].run_id)
    finally:
        writer.close()
    with Registry(store) as registry:
        found = labelled_rows(
            registry.engine,
            workflow="synthetic_fraud",
            step="Score",
            fields=Fields("prediction", "expected", "id"),
        )
    by_run = {row.run_id: row for row in found}
    assert len(found) == 6
    assert by_run[results[0].run_id].label == flipped
    assert by_run[results[0].run_id].source == "manual"
    assert by_run[results[0].run_id].corrected == (flipped != results[0].output["prediction"])
    assert {row.source for row in found if row.run_id != results[0].run_id} == {"carried"}
    assert [row.key for row in found] == [r["id"] for r in rows]


def test_targets_resolve_or_say_which_to_name(tmp_path: Path) -> None:
    workflow = relayflow.load_workflow(syn.project(tmp_path, trigger="manual"))
    by_alias = resolve_target(workflow, "fraud")
    assert (by_alias.kind, by_alias.name, by_alias.step.name) == ("sklearn", "fraud", "Score")
    assert by_alias.path == (tmp_path / "model" / "fraud.joblib").resolve()
    assert resolve_target(workflow, "Score") == by_alias == resolve_target(workflow, None)
    with pytest.raises(RelayflowError, match="'Feedback' is not an inference step"):
        resolve_target(workflow, "Feedback")
    with pytest.raises(RelayflowError, match="'nope' is neither .* use one of fraud, Score"):
        resolve_target(workflow, "nope")
