"""One setting measured on a list of items through the bench (the golden reviewer decides what
parks), with the step cache on, and what it would cost and take when it runs afresh.

A step answered from the cache costs nothing now, yet the setting still costs its model calls
and time when it meets a new item. So every step's first measurement is kept in a ledger
(``measures.jsonl`` in the output folder), by what makes the step what it is (its settings,
versions and input), and a run's time and cost are the sum of its steps' recorded ones. That
also makes the figures repeatable: with the same cache and ledger, the same setting measures
the same, which is what lets one seed give one front.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relayflow.core import events as ev

if TYPE_CHECKING:
    from relayflow.bench.runner import WorkflowBench
    from relayflow.core.events import Consumer
    from relayflow.schema.workflow import Workflow
    from relayflow.store.protocol import RunStore

#: settings that do not shape a step's output (engine/cache.py leaves them out of its key too)
_NOT_IN_KEY = {"name", "depends_on", "description", "retry", "timeout", "cache"}


@dataclass(frozen=True, slots=True)
class StepCost:
    """What one step took the first time it ran: wall seconds, model calls and cost."""

    seconds: float
    calls: int
    cost: float

    def as_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "calls": self.calls, "cost": self.cost}


class Memo:
    """The first measurement of each step identity, kept in a JSONL file (appended)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._known: dict[str, StepCost] = {}
        if path is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self._known.setdefault(
                        row["key"],
                        StepCost(float(row["seconds"]), int(row["calls"]), float(row["cost"])),
                    )
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a killed process

    def get(self, key: str) -> StepCost | None:
        return self._known.get(key)

    def first(self, key: str, cost: StepCost) -> StepCost:
        """The measurement kept for ``key``: the earlier one, or ``cost`` when it is the first."""
        with self._lock:
            known = self._known.get(key)
            if known is not None:
                return known
            self._known[key] = cost
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps({"key": key, **cost.as_json()}) + "\n")
            return cost

    def __len__(self) -> int:
        return len(self._known)


@dataclass(slots=True)
class RunCost:
    """One run as it would cost afresh: the steps' recorded seconds (its TTR, steps one after
    another), model cost, agent steps' seconds (compute), who finished its steps."""

    item_key: str | None
    seconds: float = 0.0
    cost: float = 0.0
    compute_seconds: float = 0.0
    agent_steps: int = 0
    human_steps: int = 0
    #: calls, cost and step seconds spent now (a cached step spends nothing)
    fresh_calls: int = 0
    fresh_cost: float = 0.0
    fresh_seconds: float = 0.0
    unrecorded: int = 0
    input_digest: str = ""
    outputs: dict[str, str] = field(default_factory=dict)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class Ledger:
    """An event consumer that prices each run of one setting from its steps' first
    measurements (see the module's docstring)."""

    def __init__(self, workflow: Workflow, memo: Memo) -> None:
        self.memo = memo
        self._settings = {
            a.name: _digest(a.model_dump(mode="json", exclude=_NOT_IN_KEY)) for a in workflow.agents
        }
        self._ancestors = ancestors(workflow.depends_on)
        self.runs: dict[str, RunCost] = {}
        #: each step's recorded cost summed over the runs, and its seconds in each (for the
        #: estimate, which takes the median: a model's first call also loads it)
        self.steps: dict[str, StepCost] = {}
        self.seconds: dict[str, list[float]] = {}

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            if event.run_id not in self.runs:
                self.runs[event.run_id] = RunCost(event.item_key, input_digest=_digest(event.input))
            return
        run = self.runs.get(getattr(event, "run_id", ""))
        if run is None:
            return
        if isinstance(event, ev.StepFinished):
            self._finished(run, event)
        elif isinstance(event, ev.StepFailed | ev.StepEscalated):
            run.fresh_calls += event.usage.model_calls
            run.fresh_cost += event.usage.cost
            run.cost += event.usage.cost

    def _finished(self, run: RunCost, event: ev.StepFinished) -> None:
        versions = {k: v for k, v in event.versions.items() if k != "cache"}
        upstream = {s: run.outputs.get(s, "") for s in sorted(self._ancestors.get(event.step, ()))}
        key = _digest(
            [
                event.step,
                self._settings.get(event.step, ""),
                versions,
                run.input_digest,
                upstream,
                event.actor,
            ]
        )
        if event.cached:
            recorded = self.memo.get(key)
            if recorded is None:  # cached before this ledger existed: its cost is unknown
                run.unrecorded += 1
                recorded = StepCost(0.0, 0, 0.0)
        else:
            fresh = StepCost(
                max(0.0, event.ended - event.started), event.usage.model_calls, event.usage.cost
            )
            run.fresh_calls += fresh.calls
            run.fresh_cost += fresh.cost
            run.fresh_seconds += fresh.seconds
            recorded = self.memo.first(key, fresh)
        self.seconds.setdefault(event.step, []).append(recorded.seconds)
        total = self.steps.get(event.step, StepCost(0.0, 0, 0.0))
        self.steps[event.step] = StepCost(
            total.seconds + recorded.seconds,
            total.calls + recorded.calls,
            total.cost + recorded.cost,
        )
        run.outputs[event.step] = _digest(event.output)
        run.seconds += recorded.seconds
        run.cost += recorded.cost
        if event.actor == "human":
            run.human_steps += 1
        else:
            run.agent_steps += 1
            run.compute_seconds += recorded.seconds


def ancestors(depends_on: Mapping[str, Sequence[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}

    def walk(name: str, seen: frozenset[str]) -> set[str]:
        if name in out:
            return out[name]
        found: set[str] = set()
        for parent in depends_on.get(name, ()):
            if parent not in seen:
                found |= {parent, *walk(parent, seen | {name})}
        out[name] = found
        return found

    for name in depends_on:
        walk(name, frozenset())
    return out


@dataclass(frozen=True, slots=True)
class Measured:
    """One setting on one list of items: the bench's view and each run's cost afresh."""

    bench: WorkflowBench
    costs: Mapping[str, RunCost]
    wall_seconds: float
    #: each step's recorded seconds, calls and cost over all the runs
    steps: Mapping[str, StepCost] = field(default_factory=dict)
    #: each step's recorded seconds in each run
    step_seconds: Mapping[str, Sequence[float]] = field(default_factory=dict)

    def typical_seconds(self, step: str) -> float:
        """The step's median seconds times its count: its time without a first call's load."""
        import statistics

        found = self.step_seconds.get(step)
        if not found:
            return self.steps[step].seconds if step in self.steps else 0.0
        return statistics.median(found) * len(found)

    @property
    def fresh_calls(self) -> int:
        return sum(c.fresh_calls for c in self.costs.values())

    @property
    def fresh_cost(self) -> float:
        return sum(c.fresh_cost for c in self.costs.values())

    @property
    def fresh_seconds(self) -> float:
        return sum(c.fresh_seconds for c in self.costs.values())

    @property
    def unrecorded(self) -> int:
        return sum(c.unrecorded for c in self.costs.values())


async def measure(
    workflow: Workflow,
    items: Sequence[Mapping[str, Any]],
    *,
    store: str | RunStore,
    memo: Memo,
    concurrency: int = 1,
    consumers: Sequence[Consumer] = (),
) -> Measured:
    """Run ``workflow`` once over ``items`` through the bench (golden reviewer, step cache on,
    no warm-up) and price every run from the ledger."""
    import time

    from relayflow.bench.runner import BenchOptions, bench_workflow

    cached = workflow
    if workflow.spec.cache is None:
        # every deterministic step of a cacheable type is reused, not only model calls
        cached = dataclasses.replace(
            workflow, spec=workflow.spec.model_copy(update={"cache": True})
        )
    ledger = Ledger(cached, memo)
    options = BenchOptions(
        limit=len(items), passes=1, concurrency=concurrency, reviewer="golden", warmup=0, cache=True
    )
    rows = [dict(item) for item in items]
    started = time.perf_counter()
    bench = await bench_workflow(
        cached,
        store=store,
        options=options,
        items=lambda limit: rows[:limit],
        consumers=[ledger, *consumers],
    )
    wall = time.perf_counter() - started
    return Measured(bench, dict(ledger.runs), wall, dict(ledger.steps), dict(ledger.seconds))
