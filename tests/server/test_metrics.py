"""The Prometheus consumer (observe/metrics.py) fed the runner's events."""

from __future__ import annotations

from relayflow.core import events as ev
from relayflow.core.result import Usage
from relayflow.observe.metrics import PrometheusMetrics


def value(m: PrometheusMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_runs_steps_latency_tokens_cost_and_escalations_are_counted() -> None:
    m = PrometheusMetrics()
    usage = Usage(input_tokens=10, output_tokens=3, model_calls=1, cost=0.5)
    m.handle(ev.RunStarted("r1", "wf", "v1", {}, 0.0))
    assert value(m, "relayflow_runs_active", workflow="wf") == 1
    m.handle(
        ev.StepFinished("r1", "llm", "inference", 1, 1.0, 1.25, {}, 0.9, usage, {"model": "m"})
    )
    m.handle(ev.StepFailed("r1", "check", 1, "boom", True, 2.0))
    m.handle(
        ev.StepEscalated("r1", "check", "human_review", "wf", "unsure", {}, {}, 0.2, Usage(), {}, 3)
    )
    assert value(m, "relayflow_runs_active", workflow="wf") == 0
    m.handle(ev.ReviewDecided("r1", "check", "approve", {}, "ann", 4.0, "wf"))
    m.handle(
        ev.StepFinished(
            "r1", "check", "human_review", 1, 3.0, 4.0, {}, 1.0, Usage(), {}, (), "human"
        )
    )
    m.handle(ev.RunStarted("r1", "wf", "v1", {}, 4.0))
    m.handle(ev.RunFinished("r1", "succeeded", {}, None, 5.0))

    assert value(m, "relayflow_runs_total", workflow="wf", status="succeeded") == 1
    assert value(m, "relayflow_runs_active", workflow="wf") == 0
    assert value(m, "relayflow_steps_total", workflow="wf", agent="llm", status="finished") == 1
    assert value(m, "relayflow_steps_total", workflow="wf", agent="check", status="finished") == 1
    assert value(m, "relayflow_step_seconds_count", workflow="wf", agent="llm") == 1
    assert value(m, "relayflow_step_seconds_sum", workflow="wf", agent="llm") == 0.25
    # a person's decision is not agent latency
    assert value(m, "relayflow_step_seconds_count", workflow="wf", agent="check") is None
    assert value(m, "relayflow_step_errors_total", workflow="wf", agent="check") == 1
    assert value(m, "relayflow_escalations_total", workflow="wf", agent="check") == 1
    assert value(m, "relayflow_reviews_total", workflow="wf", decision="approve") == 1
    assert value(m, "relayflow_tokens_total", workflow="wf", model="m", kind="input") == 10
    assert value(m, "relayflow_tokens_total", workflow="wf", model="m", kind="output") == 3
    assert value(m, "relayflow_cost_total", workflow="wf", model="m") == 0.5


def test_each_instance_has_its_own_registry() -> None:
    a, b = PrometheusMetrics(), PrometheusMetrics()
    a.handle(ev.RunStarted("r", "wf", "v", {}, 0.0))
    assert value(b, "relayflow_runs_started_total", workflow="wf") is None
