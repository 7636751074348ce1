"""Drive one workflow's benchmark: warm up, run K passes over the same items with the collector
listening and the golden reviewer deciding parked runs, then compute the figures."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from relayflow.bench.collector import (
    Collector,
    Figures,
    RunMeasure,
    StepSummary,
    as_agents_left_it,
    figures,
    step_summaries,
)
from relayflow.bench.reviewer import Accuracy, GoldenReviewer, ReviewCounts, measure_accuracy
from relayflow.bench.tiers import StepTiers, routed_steps, step_tiers
from relayflow.errors import ConfigError
from relayflow.learn.references import References

if TYPE_CHECKING:
    from relayflow.core.events import Consumer
    from relayflow.engine.batch import Item
    from relayflow.engine.runner import Runner, RunResult
    from relayflow.schema.workflow import Workflow
    from relayflow.store.protocol import RunStore

#: the items of one pass, at most ``limit`` of them, the same ones on every call
Items = Callable[[int], Iterable["Item"] | AsyncIterable["Item"]]
#: told when a phase starts: ``("warmup", None)`` or ``("pass", k)``
OnPhase = Callable[[str, int | None], None]


@dataclass(frozen=True, slots=True)
class BenchOptions:
    limit: int = 50
    passes: int = 1
    concurrency: int = 2
    reviewer: Literal["golden", "none"] = "golden"
    warmup: int = 2
    #: reuse cached step results (off by default: warm-up and repeated passes would otherwise
    #: measure the cache, not the workflow)
    cache: bool = False
    #: only the items whose ``evaluate.key`` is one of these (``--split``)
    keys: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class PassInfo:
    index: int
    batch_id: str
    runs: int
    wall_seconds: float


@dataclass(frozen=True, slots=True)
class WorkflowBench:
    """Everything measured for one workflow."""

    name: str
    file: str
    options: BenchOptions
    references: str
    reviews: ReviewCounts | None
    runs: tuple[RunMeasure, ...]
    passes: tuple[PassInfo, ...]
    wall_seconds: float
    cpu_seconds: float
    compute_rate: float
    figures: Figures
    accuracy: Accuracy
    steps: tuple[StepSummary, ...]
    #: the same metric on what the agents produced, before any reviewer's decision
    agent_accuracy: Accuracy | None = None
    #: the variant of the workflow's ``variants:`` that ran (``name`` is then ``workflow@variant``)
    variant: str | None = None
    #: per step whose model is a router: who answered its items (each candidate, a person)
    tiers: tuple[StepTiers, ...] = ()

    def pass_of(self, run: RunMeasure) -> int | None:
        return next((p.index for p in self.passes if p.batch_id == run.batch_id), None)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished child processes (the
    sandboxed subprocesses that run generated code)."""
    try:
        import resource
    except ImportError:  # not on Unix: this process only
        return time.process_time()
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def bench_workflow(
    workflow: Workflow,
    *,
    store: str | RunStore | None,
    options: BenchOptions = BenchOptions(),
    items: Items | None = None,
    inputs_name: str | None = None,
    consumers: Sequence[Consumer] = (),
    on_phase: OnPhase | None = None,
) -> WorkflowBench:
    """Benchmark ``workflow`` on ``items`` (default: its source agent's first records).

    ``store`` must be a store (URL, path or object): review decisions resume runs from it."""
    from relayflow.core.ids import new_id
    from relayflow.engine.factory import build_runner

    if store is None:
        raise ConfigError("the bench needs a store: give --store or leave the default")
    evaluate = workflow.spec.evaluate
    references = References(evaluate, workflow.base_dir)
    collector = Collector()
    reviewer = GoldenReviewer(references) if options.reviewer == "golden" else None
    listeners: list[Consumer] = [collector, *([reviewer] if reviewer else []), *consumers]
    passes: list[PassInfo] = []
    async with build_runner(
        workflow, store=store, consumers=listeners, use_cache=options.cache
    ) as runner:
        pick = items or _source_items(runner)
        if options.keys is not None:
            pick = _only(pick, options.keys, evaluate.key if evaluate is not None else "id")
        if options.warmup > 0:
            if on_phase is not None:
                on_phase("warmup", None)
            await _one_pass(runner, pick(options.warmup), options, reviewer, new_id(), inputs_name)
        if reviewer is not None:
            reviewer.reset()
        collector.measuring = True
        cpu_before, wall_before = cpu_seconds(), time.perf_counter()
        for index in range(1, options.passes + 1):
            if on_phase is not None:
                on_phase("pass", index)
            batch_id, started = new_id(), time.perf_counter()
            count = await _one_pass(
                runner, pick(options.limit), options, reviewer, batch_id, inputs_name
            )
            passes.append(PassInfo(index, batch_id, count, time.perf_counter() - started))
        cpu = cpu_seconds() - cpu_before
        wall = time.perf_counter() - wall_before
        collector.measuring = False
    runs = collector.runs()
    rate = workflow.spec.compute_rate_per_cpu_second
    return WorkflowBench(
        name=workflow.name,
        file=str(workflow.file),
        options=options,
        references=references.source,
        reviews=reviewer.counts if reviewer is not None else None,
        runs=runs,
        passes=tuple(passes),
        wall_seconds=wall,
        cpu_seconds=cpu,
        compute_rate=rate,
        figures=figures(runs, cpu, rate),
        accuracy=measure_accuracy(evaluate, runs, references),
        steps=step_summaries(runs, [agent.name for agent in workflow.agents]),
        agent_accuracy=measure_accuracy(evaluate, [as_agents_left_it(r) for r in runs], references),
        tiers=step_tiers(runs, evaluate, references, routed_steps(workflow)),
    )


async def _one_pass(
    runner: Runner,
    items: Iterable[Item] | AsyncIterable[Item],
    options: BenchOptions,
    reviewer: GoldenReviewer | None,
    batch_id: str,
    inputs_name: str | None,
) -> int:
    """Run one batch; each run that parks is decided at once, in the slot it held (the batch
    takes no new item until the decision has resumed the run to its end)."""
    results = runner.run_batch(
        items, concurrency=options.concurrency, batch_id=batch_id, inputs_name=inputs_name
    )
    count = 0
    try:
        async for result in results:
            count += 1
            if reviewer is not None:
                await _decide(runner, reviewer, result)
    finally:
        close = getattr(results, "aclose", None)
        if close is not None:
            await close()
    return count


async def _decide(runner: Runner, reviewer: GoldenReviewer, result: RunResult) -> RunResult:
    """Decide each review the run parks at, until it ends (or a step repeats its escalation)."""
    for _ in range(len(runner.plan.nodes) + 1):
        if result.status != "waiting_review" or result.step is None:
            return result
        result = await reviewer.review(runner, result)
    return result


def _only(pick: Items, keys: frozenset[str], key_field: str) -> Items:
    from relayflow.engine.batch import only_keys

    return lambda limit: only_keys(pick(None), keys, key_field, limit)  # type: ignore[arg-type]


def _source_items(runner: Runner) -> Items:
    """The first records of the workflow's source agent, read afresh for every pass."""
    from relayflow.engine.batch import source_agent, source_records

    agent = source_agent(runner, "give items with --inputs FILE")
    return lambda limit: source_records(agent, limit)
