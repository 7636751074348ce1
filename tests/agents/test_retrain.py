"""The retrain agent inside real runs: a performance drop (labels that flip halfway) is detected,
a retrain runs in the background, and the golden set decides between promotion and rejection."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import relayflow
from relayflow.agents.base import BuildContext
from relayflow.core.handoff import Handoff
from relayflow.core.result import StepInfo
from relayflow.errors import AgentError
from relayflow.learn.retrain_agent import RetrainAgent, RetrainConfig, parse_schedule
from relayflow.store.checkpoints import load_state
from relayflow.store.registry import Registry
from tests.learn import synthetic as syn

pytest.importorskip("sklearn", reason="scikit-learn (extra: sklearn) is missing")
pytest.importorskip("river", reason="river provides the drift detectors")

#: 200 items of the concept the model learned, then 200 whose labels are flipped
DRIFTING = syn.items(200, "a", seed=1) + syn.items(200, "b", seed=2)


def _drive(
    workflow: Path, store: str | None, rows: list[dict[str, Any]]
) -> tuple[list[Any], RetrainAgent]:
    """Run the items one by one; wait for the background job before the runner closes."""
    loaded = relayflow.load_workflow(workflow)

    async def scenario() -> tuple[list[Any], RetrainAgent]:
        async with relayflow.Runner(loaded, store=store) as runner:
            agent = runner.plan.node("Feedback").agent
            assert isinstance(agent, RetrainAgent)
            results = [await runner.run(row) for row in rows]
            await agent.wait()
            return results, agent

    return asyncio.run(scenario())


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store the runner writes; the agent finds it through $RELAYFLOW_STORE."""
    path = str(tmp_path / "runs.db")
    monkeypatch.setenv("RELAYFLOW_STORE", path)
    return path


def _requests(results: list[Any]) -> list[int]:
    return [i for i, r in enumerate(results) if r.output.get("retrain_requested")]


def test_a_performance_drop_retrains_and_the_better_model_is_promoted(
    tmp_path: Path, store: str
) -> None:
    workflow = syn.project(tmp_path)
    model_file = tmp_path / "model" / "fraud.joblib"
    fresh = syn.items(60, "b", seed=77)
    before = syn.predict(model_file, fresh)
    assert sum(p == r["expected"] for p, r in zip(before, fresh, strict=True)) == 0

    results, agent = _drive(workflow, store, DRIFTING)

    assert all(r.status == "succeeded" for r in results)
    requests = _requests(results)
    assert len(requests) == 1 and 200 < requests[0] < 400
    reason = results[requests[0]].output["retrain_reason"]
    assert "drift detected (adwin)" in reason and "under the threshold 0.850" in reason
    assert agent.errors == []
    [outcome] = agent.outcomes
    assert outcome.decision == "promoted" and outcome.scores.candidate > outcome.scores.parent
    with Registry(store) as registry:
        production = registry.production("fraud")
        assert production is not None and production.version == outcome.candidate
        assert production.card["trigger"] == "performance_drop"
        assert production.card["data"]["runs"] == "the drift window"
    assert model_file.read_bytes() == Path(production.artifact).read_bytes()
    # a new runner loads the promoted file: its predictions follow the new concept
    after, _ = _drive(workflow, store, fresh)
    assert [r.output["prediction"] for r in after] == [r["expected"] for r in fresh]


def test_a_candidate_worse_on_the_golden_set_is_rejected_and_production_stays(
    tmp_path: Path, store: str
) -> None:
    # the golden file holds the original concept: the flipped labels are bad labels
    workflow = syn.project(tmp_path, golden=syn.items(40, "a", seed=9))
    model_file = tmp_path / "model" / "fraud.joblib"
    before = model_file.read_bytes(), model_file.stat().st_mtime_ns

    results, agent = _drive(workflow, store, DRIFTING)

    assert len(_requests(results)) == 1
    [outcome] = agent.outcomes
    assert outcome.decision == "rejected" and outcome.scores.candidate < outcome.scores.parent
    assert outcome.scores.source.startswith("file: ")
    assert (model_file.read_bytes(), model_file.stat().st_mtime_ns) == before
    with Registry(store) as registry:
        production = registry.production("fraud")
        assert registry.get("fraud", outcome.candidate).status == "rejected"
    assert production is not None and production.version == outcome.parent


def test_the_detector_state_survives_a_restart(tmp_path: Path, store: str) -> None:
    workflow = syn.project(tmp_path)
    _drive(workflow, store, DRIFTING[:120])
    with Registry(store) as registry:
        state = load_state(registry.engine, "synthetic_fraud", "Feedback")
    assert state is not None and state["monitor"]["count"] == 120

    # the second process continues the count and sees the drop that started in the first
    results, agent = _drive(workflow, store, DRIFTING[120:])
    assert agent.monitor is not None
    assert len(_requests(results)) == 1
    assert [o.decision for o in agent.outcomes] == ["promoted"]


def test_without_a_store_the_request_is_flagged_but_nothing_is_trained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RELAYFLOW_STORE", raising=False)
    workflow = syn.project(tmp_path)
    before = (tmp_path / "model" / "fraud.joblib").read_bytes()
    results, agent = _drive(workflow, None, DRIFTING)
    [index] = _requests(results)
    assert "retrain not started: no run store" in results[index].output["retrain_reason"]
    assert agent.outcomes == [] and len(agent.errors) == 1
    assert (tmp_path / "model" / "fraud.joblib").read_bytes() == before


def test_a_schedule_retrains_every_n_runs(tmp_path: Path, store: str) -> None:
    workflow = syn.project(tmp_path, trigger="schedule", extra="    schedule: every 60 runs")
    results, agent = _drive(workflow, store, syn.items(60, "b", seed=3))
    assert _requests(results) == [59]
    assert results[59].output["retrain_reason"] == "schedule: every 60 runs"
    assert [o.decision for o in agent.outcomes] == ["promoted"], agent.errors


def test_manual_passes_items_through_untouched(tmp_path: Path, store: str) -> None:
    workflow = syn.project(tmp_path, trigger="manual")
    rows = DRIFTING[190:260]
    results, agent = _drive(workflow, store, rows)
    assert agent.monitor is None and agent.outcomes == []
    expected = [{*row, "prediction", "prediction_probabilities"} for row in rows]
    assert [set(r.output) for r in results] == expected


def test_a_reviewed_item_is_judged_by_the_models_own_answer(tmp_path: Path, store: str) -> None:
    workflow = syn.project(tmp_path)
    text = workflow.read_text().replace(
        "  - name: Feedback",
        '  - name: Check\n    type: human_review\n    when: "true"\n  - name: Feedback',
    )
    workflow.write_text(text)
    loaded = relayflow.load_workflow(workflow)
    rows = [{k: v for k, v in row.items() if k != "expected"} for row in DRIFTING[:3]]

    async def scenario() -> tuple[list[Any], RetrainAgent]:
        async with relayflow.Runner(loaded, store=store) as runner:
            agent = runner.plan.node("Feedback").agent
            assert isinstance(agent, RetrainAgent)
            parked = [await runner.run(row) for row in rows]
            decided = []
            for result, row in zip(parked, DRIFTING[:3], strict=True):
                wrong = "legit" if row["expected"] == "phishing" else "phishing"
                decided.append(
                    await runner.decide(
                        result.run_id, "Check", "correct", {**row, "prediction": wrong}
                    )
                )
            return decided, agent

    decided, agent = asyncio.run(scenario())
    assert [r.status for r in decided] == ["succeeded"] * 3
    assert agent.monitor is not None
    window = agent.monitor.state()["window"]
    # the model (trained on this concept) was right; the reviewer's answer is the label
    assert [(p, r) for _, p, r, _ in window] == [
        (row["expected"], "legit" if row["expected"] == "phishing" else "phishing")
        for row in DRIFTING[:3]
    ]


def test_schedules_parse_or_say_how_to_write_them(ctx: BuildContext) -> None:
    assert parse_schedule("every 500 runs") == ("runs", 500)
    assert parse_schedule("100") == ("runs", 100)
    assert parse_schedule("30 min") == ("seconds", 1800)
    assert parse_schedule("6h") == ("seconds", 21600)
    assert parse_schedule("every 2 days") == ("seconds", 172800)
    with pytest.raises(AgentError, match="write `every 500 runs`"):
        parse_schedule("weekly")
    agent = RetrainAgent(RetrainConfig(name="R", type="retrain", trigger="schedule"), ctx)
    with pytest.raises(AgentError, match="needs `schedule:`"):
        asyncio.run(agent.prepare())


def test_items_without_a_reference_are_not_observed(
    ctx: BuildContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RELAYFLOW_STORE", raising=False)
    agent = RetrainAgent(RetrainConfig(name="R", type="retrain"), ctx)

    async def scenario() -> list[Any]:
        await agent.prepare()
        outputs = []
        for i, data in enumerate([{"output": "a"}, {"output": "a", "expected": "a"}]):
            result = await agent.run(Handoff(data, run_id=f"r{i}"), StepInfo(f"r{i}", "R", 1))
            outputs.append(result.data)
        await agent.close()
        return outputs

    outputs = asyncio.run(scenario())
    assert outputs == [{"output": "a"}, {"output": "a", "expected": "a"}]
    assert agent.monitor is not None and agent.monitor.observations == 1
    assert agent.versions() == {"trigger": "performance_drop", "detector": "adwin"}
