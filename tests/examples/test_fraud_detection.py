"""The fraud_detection example end to end: train its model, run 60 pages of river's Phishing data
through the workflow with a SQLite store, and resume a parked run with a review decision."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import relayflow
from relayflow.agents.base import SourceAgent
from relayflow.agents.formats import BadRecord
from relayflow.errors import ProviderError

pytest.importorskip("river", reason="river (extra: examples) ships the Phishing data")
pytest.importorskip("sklearn", reason="scikit-learn (extra: sklearn) is missing")
pytest.importorskip("joblib", reason="joblib (extra: sklearn) is missing")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud_detection"
ITEMS = 60


def _module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _copy_example(dest: Path) -> Path:
    """The example folder without a trained model, so that nothing is written into the repo."""
    folder = dest / "fraud_detection"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("model", "__pycache__"))
    return folder


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example folder: importing its scripts writes bytecode next to them."""
    return _copy_example(tmp_path_factory.mktemp("example"))


@pytest.fixture(scope="module")
def trained(example: Path) -> tuple[Path, dict[str, Any]]:
    """The copy with its model trained into it, and the model's card."""
    card = _module(example / "train_model.py", "fraud_detection_train").train(example / "model")
    return example, card


@pytest.fixture(scope="module")
def features(example: Path) -> ModuleType:
    return _module(example / "features.py", "fraud_detection_features_under_test")


def test_transform_gives_numbers_label_and_content_id(features: ModuleType) -> None:
    row = {name: "0.5" for name in features.FEATURES} | {"age_of_domain": "1", "is_phishing": "1"}
    out = features.transform(row)
    assert [k for k in out if k in features.FEATURES] == list(features.FEATURES)
    assert out["age_of_domain"] == 1.0 and out["https"] == 0.5
    assert all(isinstance(out[name], float) for name in features.FEATURES)
    assert out["expected"] == "phishing"
    assert out["id"] == features.transform(dict(row))["id"]
    assert out["id"].startswith("ph-") and len(out["id"]) == 13
    legit = features.transform(row | {"is_phishing": False})
    assert legit["expected"] == "legit" and legit["id"] != out["id"]
    assert (
        features.transform({k: v for k, v in row.items() if k != "is_phishing"})["expected"] is None
    )
    with pytest.raises(ValueError, match="popup_window"):
        features.transform({k: v for k, v in row.items() if k != "popup_window"})


def test_training_holds_out_rows_and_writes_a_card(trained: tuple[Path, dict[str, Any]]) -> None:
    folder, card = trained
    assert (folder / "model" / "phishing.joblib").is_file()
    assert json.loads((folder / "model" / "card.json").read_text()) == card
    assert card["rows"] == {
        "total": 1250,
        "train": 1000,
        "test": 250,
        "train_rows": "250-1249",
        "test_rows": "0-249",
    }
    assert card["classes"] == ["legit", "phishing"]
    metrics = card["metrics"]
    # measured: accuracy 0.908, F1 0.897, ROC AUC 0.972 (sklearn 1.9, random_state 0)
    assert metrics["accuracy"] >= 0.85 and metrics["f1"] >= 0.85 and metrics["roc_auc"] >= 0.93
    assert 0.03 <= card["review_gate"]["0.7"]["share_to_review"] <= 0.25


def test_workflow_validates_with_the_agents_in_order() -> None:
    workflow = relayflow.load_workflow(EXAMPLE / "workflow.yaml")
    assert workflow.name == "fraud_detection"
    assert [a.type for a in workflow.agents] == [
        "retrieval",
        "transform",
        "inference",
        "quality_check",
        "human_review",
        "retrain",
    ]


def test_a_missing_model_stops_the_workflow_before_any_run(tmp_path: Path) -> None:
    folder = _copy_example(tmp_path)
    workflow = relayflow.load_workflow(folder / "workflow.yaml")

    async def start() -> None:
        async with relayflow.Runner(workflow):
            pass

    with pytest.raises(ProviderError, match=r"phishing\.joblib does not exist"):
        asyncio.run(start())


async def _first(runner: relayflow.Runner, count: int) -> AsyncIterator[Mapping[str, Any]]:
    """The first ``count`` records of the workflow's own source (the package's CSV)."""
    source = runner.plan.nodes[runner.plan.source or 0].agent
    assert isinstance(source, SourceAgent)
    records = source.records()
    try:
        seen = 0
        async for record in records:
            assert not isinstance(record, BadRecord)
            yield record
            seen += 1
            if seen == count:
                return
    finally:
        close = getattr(records, "aclose", None)
        if close is not None:  # stop reading the CSV now, not when it is garbage-collected
            await close()


def test_sixty_pages_score_escalate_and_resume_after_review(
    trained: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    import joblib

    folder, _card = trained
    workflow = relayflow.load_workflow(folder / "workflow.yaml")
    model = joblib.load(folder / "model" / "phishing.joblib")
    columns = workflow.spec.models["phishing"].params["features"]

    async def scenario() -> tuple[list[Any], Any, Any, list[dict[str, Any]]]:
        async with relayflow.Runner(workflow, store=str(tmp_path / "runs.db")) as runner:
            results = [r async for r in runner.run_batch(_first(runner, ITEMS), concurrency=4)]
            parked = next(r for r in results if r.status == "waiting_review")
            approved = await runner.decide(parked.run_id, "GreyZone", "approve")
            store = runner.store
            return results, approved, store.get_run(parked.run_id), store.feedback(workflow.name)

    results, approved, record, feedback = asyncio.run(scenario())

    assert len(results) == ITEMS
    assert {r.status for r in results} <= {"succeeded", "waiting_review"}, [
        r.error for r in results if r.error
    ]
    waiting = [r for r in results if r.status == "waiting_review"]
    assert all(r.step == "GreyZone" for r in waiting)
    # measured: 6 of 60 (10 %) below confidence 0.7
    assert 0.01 <= len(waiting) / ITEMS <= 0.40

    done = [r.output for r in results if r.status == "succeeded"]
    assert all(o["prediction"] in ("phishing", "legit") for o in done)
    # the workflow feeds the columns in the order the model was fitted on
    rows = [[o[c] for c in columns] for o in done]
    assert [o["prediction"] for o in done] == [str(p) for p in model.predict(rows)]
    # measured: 51 of 54 (0.944); a model fed its columns in another order scores about 0.73
    accuracy = sum(o["prediction"] == o["expected"] for o in done) / len(done)
    assert accuracy >= 0.85

    assert approved.status == "succeeded"
    assert approved.output is not None and approved.output["prediction"] in ("phishing", "legit")
    assert record.status == "succeeded"
    assert [(f["run_id"], f["source"]) for f in feedback] == [(approved.run_id, "review")]
