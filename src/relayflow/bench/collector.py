"""The bench's event consumer: per run, the step timestamps (TTR), model time, tokens, cost,
escalations, which steps an agent or a person finished and which router candidate answered a
routed step; and the figures of those runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from relayflow.core import events as ev
from relayflow.eval.stats import median, percentile


@dataclass(frozen=True, slots=True)
class StepTime:
    """One finished step of a run: how long it took, who finished it, its model time."""

    step: str
    agent_type: str
    attempt: int
    started: float
    ended: float
    actor: str
    model_seconds: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.ended - self.started)


@dataclass(frozen=True, slots=True)
class RunMeasure:
    """What one measured run came to. ``ttr`` is the last step end minus the first step start
    (every attempt counts); None when no step started."""

    run_id: str
    batch_id: str | None
    item_key: str | None
    status: str
    first_start: float | None
    last_end: float | None
    model_seconds: float
    model_calls: int
    input_tokens: int
    output_tokens: int
    cost: float
    agent_steps: int
    human_steps: int
    failed_attempts: int
    escalations: int
    steps: tuple[StepTime, ...]
    output: Mapping[str, Any] | None
    error: str | None
    cache_hits: int = 0
    cache_misses: int = 0
    #: the item as the agents left it when the run was escalated, before a person decided
    agent_output: Mapping[str, Any] | None = None
    #: step -> the router candidate that answered it (``versions.answered_by``, alias=version)
    answered_by: Mapping[str, str] = field(default_factory=dict)

    @property
    def ttr(self) -> float | None:
        if self.first_start is None or self.last_end is None:
            return None
        return max(0.0, self.last_end - self.first_start)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def as_agents_left_it(run: RunMeasure) -> RunMeasure:
    """The run's output with the fields an escalated step held before a person changed them."""
    if run.agent_output is None or run.output is None:
        return run
    return dataclasses.replace(run, output={**run.output, **run.agent_output})


@dataclass(slots=True)
class _Run:
    """The mutable tally of one run while its events arrive."""

    run_id: str
    batch_id: str | None
    item_key: str | None
    status: str = "running"
    first_start: float | None = None
    last_end: float | None = None
    model_seconds: float = 0.0
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    agent_steps: int = 0
    human_steps: int = 0
    failed_attempts: int = 0
    escalations: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    agent_output: Mapping[str, Any] | None = None
    answered_by: dict[str, str] = field(default_factory=dict)
    steps: list[StepTime] = field(default_factory=list)
    output: Mapping[str, Any] | None = None
    error: str | None = None

    def span(self, start: float, end: float) -> None:
        if self.first_start is None or start < self.first_start:
            self.first_start = start
        if self.last_end is None or end > self.last_end:
            self.last_end = end

    def use(self, usage: Any) -> None:
        self.model_seconds += usage.model_seconds
        self.model_calls += usage.model_calls
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cost += usage.cost

    def freeze(self) -> RunMeasure:
        return RunMeasure(
            self.run_id,
            self.batch_id,
            self.item_key,
            self.status,
            self.first_start,
            self.last_end,
            self.model_seconds,
            self.model_calls,
            self.input_tokens,
            self.output_tokens,
            self.cost,
            self.agent_steps,
            self.human_steps,
            self.failed_attempts,
            self.escalations,
            tuple(self.steps),
            self.output,
            self.error,
            self.cache_hits,
            self.cache_misses,
            self.agent_output,
            dict(self.answered_by),
        )


class Collector:
    """Measures the runs that start while ``measuring`` is true (warm-up runs are left out);
    a measured run keeps being measured when it resumes after a review decision."""

    def __init__(self, *, measuring: bool = False) -> None:
        self.measuring = measuring
        self._runs: dict[str, _Run] = {}

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            known = self._runs.get(event.run_id)
            if known is not None:
                known.status = "running"  # a resume after a decision: the same run goes on
            elif self.measuring:
                self._runs[event.run_id] = _Run(event.run_id, event.batch_id, event.item_key)
            return
        if isinstance(
            event,
            ev.BatchStarted
            | ev.BatchFinished
            | ev.RecordRejected
            | ev.ReviewDecided
            | ev.BudgetAlert,
        ):
            return
        run = self._runs.get(event.run_id)
        if run is None:
            return
        if isinstance(event, ev.StepStarted):
            run.span(event.ts, event.ts)
        elif isinstance(event, ev.StepFinished):
            run.span(event.started, event.ended)
            run.use(event.usage)
            if event.actor == "human":
                run.human_steps += 1
            else:
                run.agent_steps += 1
            if event.cached:
                run.cache_hits += 1
            elif event.versions.get("cache") == "miss":
                run.cache_misses += 1
            answered_by = event.versions.get("answered_by")
            if isinstance(answered_by, str):
                run.answered_by[event.step] = answered_by
            run.steps.append(
                StepTime(
                    event.step,
                    event.agent_type,
                    event.attempt,
                    event.started,
                    event.ended,
                    event.actor,
                    event.usage.model_seconds,
                )
            )
        elif isinstance(event, ev.StepFailed):
            run.span(event.ts, event.ts)
            run.use(event.usage)
            run.failed_attempts += 1
        elif isinstance(event, ev.StepEscalated):
            run.span(event.ts, event.ts)
            run.use(event.usage)
            run.escalations += 1
            run.status = "waiting_review"
            if run.agent_output is None:
                run.agent_output = event.output
        elif isinstance(event, ev.RunFinished):
            run.status = event.status
            run.output = event.output
            run.error = event.error

    def runs(self) -> tuple[RunMeasure, ...]:
        """Every measured run so far, in the order they started."""
        return tuple(run.freeze() for run in self._runs.values())

    def __len__(self) -> int:
        return len(self._runs)


@dataclass(frozen=True, slots=True)
class Figures:
    """The bench's columns for one workflow. TTR and the share of it outside model calls over
    completed runs; CPW = (model cost of every run + CPU seconds x rate) / completed runs;
    utilization and escalations over every run; None where there was nothing to measure."""

    runs: int
    completed: int
    failed: int
    parked: int
    escalated: int
    ttr_median: float | None
    ttr_p95: float | None
    model_cost: float
    compute_cost: float
    cpw: float | None
    utilization: float | None
    escalation_rate: float | None
    outside_model_share: float | None
    tokens_per_run: float | None
    model_seconds: float
    cache_hits: int = 0
    cache_misses: int = 0

    @property
    def cpw_model(self) -> float | None:
        return self.model_cost / self.completed if self.completed else None

    @property
    def cpw_compute(self) -> float | None:
        return self.compute_cost / self.completed if self.completed else None


def figures(runs: Sequence[RunMeasure], cpu_seconds: float, rate: float) -> Figures:
    """The figures of ``runs``, given the CPU seconds they took and the price of one."""
    completed = [r for r in runs if r.status == "succeeded"]
    ttrs = [t for t in (r.ttr for r in completed) if t is not None]
    agent = sum(r.agent_steps for r in runs)
    steps = agent + sum(r.human_steps for r in runs)
    model_cost = sum(r.cost for r in runs)
    compute_cost = cpu_seconds * rate
    total_ttr = sum(ttrs)
    inside = sum(r.model_seconds for r in completed if r.ttr is not None)
    outside = min(1.0, max(0.0, 1.0 - inside / total_ttr)) if total_ttr > 0 else None
    return Figures(
        runs=len(runs),
        completed=len(completed),
        failed=sum(r.status in ("failed", "cancelled") for r in runs),
        parked=sum(r.status == "waiting_review" for r in runs),
        escalated=sum(r.escalations > 0 for r in runs),
        ttr_median=median(ttrs) if ttrs else None,
        ttr_p95=percentile(ttrs, 95) if ttrs else None,
        model_cost=model_cost,
        compute_cost=compute_cost,
        cpw=(model_cost + compute_cost) / len(completed) if completed else None,
        utilization=agent / steps if steps else None,
        escalation_rate=sum(r.escalations > 0 for r in runs) / len(runs) if runs else None,
        outside_model_share=outside,
        tokens_per_run=sum(r.tokens for r in runs) / len(runs) if runs else None,
        model_seconds=sum(r.model_seconds for r in runs),
        cache_hits=sum(r.cache_hits for r in runs),
        cache_misses=sum(r.cache_misses for r in runs),
    )


@dataclass(frozen=True, slots=True)
class StepSummary:
    """How long one step of the workflow took over the measured runs (finished steps only)."""

    step: str
    agent_type: str
    n: int
    mean: float
    median: float
    p95: float
    total: float
    model_seconds: float
    agent: int
    human: int


def step_summaries(
    runs: Sequence[RunMeasure], order: Sequence[str] = ()
) -> tuple[StepSummary, ...]:
    """One summary per step name, in ``order`` (the workflow's agents), then any others."""
    by_step: dict[str, list[StepTime]] = {}
    for run in runs:
        for step in run.steps:
            by_step.setdefault(step.step, []).append(step)
    names = [n for n in order if n in by_step] + [n for n in by_step if n not in order]
    summaries = []
    for name in names:
        times = by_step[name]
        seconds = [t.seconds for t in times]
        summaries.append(
            StepSummary(
                step=name,
                agent_type=times[0].agent_type,
                n=len(times),
                mean=sum(seconds) / len(seconds),
                median=median(seconds),
                p95=percentile(seconds, 95),
                total=sum(seconds),
                model_seconds=sum(t.model_seconds for t in times),
                agent=sum(t.actor != "human" for t in times),
                human=sum(t.actor == "human" for t in times),
            )
        )
    return tuple(summaries)
