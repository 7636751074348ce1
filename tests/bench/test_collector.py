"""The bench's collector and figures, on synthetic event sequences: TTR over every attempt,
usage, who finished each step, warm-up runs left out, and the figures computed from the runs."""

from __future__ import annotations

import math

import pytest

from relayflow.bench.collector import Collector, RunMeasure, figures, step_summaries
from relayflow.core import events as ev
from relayflow.core.result import Usage

NO = Usage()


def finished(
    run_id: str,
    step: str,
    started: float,
    ended: float,
    usage: Usage = NO,
    actor: ev.Actor = "agent",
) -> ev.StepFinished:
    return ev.StepFinished(
        run_id, step, "transform", 1, started, ended, {}, None, usage, {}, (), actor
    )


def reviewed_run(collector: Collector, run_id: str = "r1") -> None:
    """A run that retries its model step, parks for review, is decided by a person, resumes."""
    handle = collector.handle
    handle(ev.RunStarted(run_id, "wf", "v1", {"n": 1}, 100.0, "b1", "0"))
    handle(finished(run_id, "Source", 100.0, 100.0))
    handle(ev.StepStarted(run_id, "Infer", 1, 100.0))
    handle(ev.StepFailed(run_id, "Infer", 1, "timeout", True, 100.5, Usage(model_seconds=0.2)))
    handle(ev.StepStarted(run_id, "Infer", 2, 101.0))
    model = Usage(input_tokens=10, output_tokens=5, model_calls=1, model_seconds=0.6, cost=0.02)
    handle(finished(run_id, "Infer", 101.0, 102.0, model))
    handle(ev.StepStarted(run_id, "Review", 1, 102.0))
    escalated = Usage(cost=0.01)
    handle(
        ev.StepEscalated(
            run_id, "Review", "human_review", "wf", "unsure", {}, {}, 0.4, escalated, {}, 102.5
        )
    )
    handle(ev.ReviewDecided(run_id, "Review", "approve", {}, "ann", 104.0))
    handle(finished(run_id, "Review", 102.0, 104.0, actor="human"))
    handle(ev.RunStarted(run_id, "wf", "v1", {"n": 1}, 104.0, "b1", "0"))  # the resume
    handle(ev.StepStarted(run_id, "Finish", 1, 104.0))
    handle(finished(run_id, "Finish", 104.0, 104.5))
    handle(ev.RunFinished(run_id, "succeeded", {"label": "x"}, None, 104.6))


def test_a_run_s_ttr_spans_every_attempt_and_the_review() -> None:
    collector = Collector(measuring=True)
    reviewed_run(collector)
    (run,) = collector.runs()
    assert run.status == "succeeded"
    assert run.ttr == pytest.approx(4.5)  # last step end 104.5 - first step start 100.0
    assert run.model_seconds == pytest.approx(0.8)  # the failed attempt's model time counts
    assert run.cost == pytest.approx(0.03)
    assert (run.tokens, run.model_calls) == (15, 1)
    assert (run.agent_steps, run.human_steps) == (3, 1)
    assert (run.failed_attempts, run.escalations) == (1, 1)
    assert [s.step for s in run.steps] == ["Source", "Infer", "Review", "Finish"]
    assert run.output == {"label": "x"}


def test_runs_started_while_not_measuring_are_left_out_even_when_they_resume() -> None:
    collector = Collector()
    reviewed_run(collector, "warm")
    collector.measuring = True
    reviewed_run(collector, "counted")
    collector.handle(finished("warm", "Late", 200.0, 201.0))
    assert [r.run_id for r in collector.runs()] == ["counted"]


def test_a_parked_run_stays_waiting_for_review() -> None:
    collector = Collector(measuring=True)
    collector.handle(ev.RunStarted("p", "wf", "v1", {}, 1.0, "b1", "0"))
    collector.handle(ev.StepStarted("p", "Review", 1, 1.0))
    collector.handle(
        ev.StepEscalated("p", "Review", "human_review", "wf", "why", {}, {}, None, NO, {}, 1.5)
    )
    (run,) = collector.runs()
    assert run.status == "waiting_review"
    assert run.ttr == pytest.approx(0.5)
    assert (run.agent_steps, run.human_steps) == (0, 0)


def measure(
    run_id: str, status: str, ttr: float, model: float, cost: float, **kw: int
) -> RunMeasure:
    return RunMeasure(
        run_id, "b1", run_id, status, 10.0, 10.0 + ttr, model, 1, 100, 20, cost,
        kw.get("agent", 3), kw.get("human", 0), 0, kw.get("escalations", 0), (), {}, None,
    )  # fmt: skip


def test_figures_of_runs_with_a_human_step_a_failure_and_a_parked_run() -> None:
    collector = Collector(measuring=True)
    reviewed_run(collector)
    runs = [
        *collector.runs(),  # TTR 4.5 s, model 0.8 s, $0.03, 3 agent steps + 1 human
        measure("ok2", "succeeded", 1.5, 0.7, 0.05),
        measure("bad", "failed", 9.0, 1.0, 0.04, agent=1),
        measure("parked", "waiting_review", 2.0, 0.1, 0.0, agent=2, escalations=1),
    ]
    f = figures(runs, cpu_seconds=2.0, rate=0.01)
    assert (f.runs, f.completed, f.failed, f.parked, f.escalated) == (4, 2, 1, 1, 2)
    assert f.ttr_median == pytest.approx(3.0)  # of the completed runs: 1.5 and 4.5
    assert f.ttr_p95 == pytest.approx(1.5 + 0.95 * 3.0)
    # every run's model cost and the CPU, shared by the two completed runs
    assert f.cpw == pytest.approx((0.03 + 0.05 + 0.04 + 0.0 + 2.0 * 0.01) / 2)
    assert f.cpw_model == pytest.approx(0.12 / 2)
    assert f.cpw_compute == pytest.approx(0.02 / 2)
    assert f.utilization == pytest.approx((3 + 3 + 1 + 2) / (3 + 3 + 1 + 2 + 1))
    assert f.escalation_rate == pytest.approx(0.5)
    assert f.outside_model_share == pytest.approx(1 - (0.8 + 0.7) / (4.5 + 1.5))
    assert f.tokens_per_run == pytest.approx((15 + 3 * 120) / 4)


def test_the_model_share_is_clipped_and_nothing_measured_gives_none() -> None:
    parallel = measure("p", "succeeded", 1.0, 3.0, 0.0)  # branches overlap: model > TTR
    assert figures([parallel], 0.0, 0.0).outside_model_share == 0.0
    empty = figures([], cpu_seconds=1.0, rate=1.0)
    assert empty.cpw is None and empty.ttr_median is None and empty.utilization is None
    assert empty.escalation_rate is None and empty.outside_model_share is None
    assert not math.isnan(empty.compute_cost)


def test_step_summaries_follow_the_workflow_order_and_count_people() -> None:
    collector = Collector(measuring=True)
    reviewed_run(collector, "a")
    reviewed_run(collector, "b")
    steps = step_summaries(collector.runs(), ["Source", "Infer", "Review", "Finish"])
    assert [s.step for s in steps] == ["Source", "Infer", "Review", "Finish"]
    review = steps[2]
    assert (review.n, review.human, review.agent) == (2, 2, 0)
    assert review.mean == pytest.approx(2.0)
    assert steps[1].model_seconds == pytest.approx(1.2)  # finished attempts only
    assert steps[0].total == 0.0
