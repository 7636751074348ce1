"""The progress consumer: run counts, TTR and usage counted from events alone."""

from __future__ import annotations

import io
import random
import statistics

from rich.console import Console

from relayflow.cli.progress import BatchProgress, RunningMedian, render_summary
from relayflow.core import events as ev
from relayflow.core.result import Usage


def started(run_id: str, ts: float, key: str | None = None) -> ev.RunStarted:
    return ev.RunStarted(run_id, "wf", "v1", {}, ts, "b1", key)


def finished(
    run_id: str, status: ev.RunStatus, ts: float, error: str | None = None
) -> ev.RunFinished:
    return ev.RunFinished(run_id, status, None, error, ts)


def step(run_id: str, tokens: int, cost: float) -> ev.StepFinished:
    usage = Usage(input_tokens=tokens, output_tokens=1, cost=cost)
    return ev.StepFinished(run_id, "s", "t", 1, 0.0, 0.0, {}, None, usage, {})


def test_counts_ttr_and_usage_come_from_the_events() -> None:
    progress = BatchProgress(total=4)
    progress.handle(ev.BatchStarted("b1", "wf", "wf.yaml", None, 2, 0.0))
    for i, run_id in enumerate("abcd"):
        progress.handle(started(run_id, 10.0 + i, f"{i}"))
    progress.handle(step("a", 10, 0.01))
    progress.handle(finished("a", "succeeded", 11.0))  # 1 s
    progress.handle(ev.StepFailed("b", "s", 1, "boom", False, 12.0, Usage(cost=0.5)))
    progress.handle(finished("b", "failed", 14.0, "boom"))  # 3 s
    progress.handle(
        ev.StepEscalated(
            "c", "r", "human_review", "wf", "unsure", {}, {}, 0.4, Usage(input_tokens=5), {}, 13.0
        )
    )
    assert progress.done == 3
    assert "ok 1  failed 1  review 1" in progress.stats_text()
    progress.handle(finished("d", "cancelled", 20.0))

    summary = progress.summary()
    assert summary.batch_id == "b1"
    assert (
        summary.runs,
        summary.succeeded,
        summary.failed,
        summary.waiting_review,
        summary.cancelled,
    ) == (4, 1, 1, 1, 1)
    assert summary.median_ttr == 2.0  # cancelled runs have no TTR
    assert summary.p95_ttr == 3.0
    assert summary.tokens == 16
    assert abs(summary.cost - 0.51) < 1e-9
    assert [(f.run_id, f.item_key, f.error) for f in summary.failures] == [("b", "1", "boom")]


def test_a_resumed_run_is_counted_once() -> None:
    progress = BatchProgress()
    progress.handle(started("a", 0.0))
    progress.handle(
        ev.StepEscalated("a", "r", "human_review", "wf", "?", {}, {}, None, Usage(), {}, 1.0)
    )
    progress.handle(started("a", 5.0))  # a decision resumed it
    progress.handle(finished("a", "succeeded", 6.0))
    summary = progress.summary()
    assert (summary.runs, summary.succeeded, summary.waiting_review) == (1, 1, 0)
    assert summary.median_ttr == 1.0


def test_running_median_matches_statistics() -> None:
    rng = random.Random(7)
    median = RunningMedian()
    values: list[float] = []
    assert median.value() is None
    for _ in range(301):
        values.append(rng.random())
        median.add(values[-1])
        assert median.value() == statistics.median(values)


def test_summary_names_the_batch_and_how_to_resume_it() -> None:
    progress = BatchProgress()
    progress.handle(ev.BatchStarted("b9", "wf", "wf.yaml", None, 2, 0.0))
    progress.handle(started("a", 0.0, "0"))
    progress.handle(finished("a", "failed", 1.0, "it broke"))
    out = io.StringIO()
    render_summary(progress.summary(), Console(file=out, width=120), limit=3)
    text = out.getvalue()
    assert "failed: run a (item 0): it broke" in text
    assert "relayflow resume --batch b9 --limit 3" in text
