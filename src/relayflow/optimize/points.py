"""The objectives of one measured setting, each with its 95 % bootstrap interval and its per-item
values (so that two settings can be compared item by item), and the comparison of a setting
with the baseline: a paired bootstrap difference per objective, oriented so that a positive
gain is better."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relayflow.schema.optimize import MAXIMIZE

if TYPE_CHECKING:
    from relayflow.eval.stats import Diff
    from relayflow.learn.references import References
    from relayflow.optimize.measure import Measured
    from relayflow.schema.file import EvaluateSpec


@dataclass(frozen=True, slots=True)
class Value:
    """An objective's value with its bootstrap interval (None: it could not be measured)."""

    value: float | None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class Point:
    """One setting as measured: its knob values, each objective, the items behind them."""

    number: int
    params: Mapping[str, Any]
    values: Mapping[str, Value]
    per_item: Mapping[str, Mapping[str, float]]
    runs: int
    completed: int
    fresh_calls: int
    fresh_cost: float
    wall_seconds: float
    unrecorded: int = 0
    #: how far the point is outside each constraint (0: it holds)
    violations: Mapping[str, float] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return all(v <= 0 for v in self.violations.values())

    def value(self, objective: str) -> float | None:
        found = self.values.get(objective)
        return found.value if found is not None else None


def figures_of(
    number: int,
    params: Mapping[str, Any],
    measured: Measured,
    evaluate: EvaluateSpec | None,
    references: References,
    rate: float,
    seed: int = 0,
) -> Point:
    """The five objectives of ``measured`` (whatever the study optimizes, all are reported)."""
    from relayflow.bench.collector import as_agents_left_it
    from relayflow.bench.compare import item_scores
    from relayflow.eval.stats import bootstrap_stat_ci

    bench = measured.bench
    runs = bench.runs
    completed = [r for r in runs if r.status == "succeeded"]
    costs = measured.costs
    key = {r.run_id: r.item_key or r.run_id for r in runs}
    per_item: dict[str, dict[str, float]] = {
        "metric": item_scores(runs, evaluate, references),
        "agent_metric": item_scores([as_agents_left_it(r) for r in runs], evaluate, references),
        "cpw": {},
        "ttr": {},
        "utilization": {},
    }
    spent, done, seconds, agent, steps = [], [], [], [], []
    for run in runs:
        cost = costs.get(run.run_id)
        if cost is None:
            continue
        total = cost.cost + cost.compute_seconds * rate
        ok = run.status == "succeeded"
        spent.append(total)
        done.append(1.0 if ok else 0.0)
        per_item["cpw"][key[run.run_id]] = total
        steps_here = cost.agent_steps + cost.human_steps
        agent.append(float(cost.agent_steps))
        steps.append(float(steps_here))
        if steps_here:
            per_item["utilization"][key[run.run_id]] = cost.agent_steps / steps_here
        if ok:
            seconds.append(cost.seconds)
            per_item["ttr"][key[run.run_id]] = cost.seconds

    # the metric's interval is the bench's own, made the way its metric needs (macro F1 …)
    values: dict[str, Value] = {}
    for name, accuracy in (("metric", bench.accuracy), ("agent_metric", bench.agent_accuracy)):
        values[name] = (
            Value(accuracy.value, accuracy.low, accuracy.high)
            if accuracy is not None and accuracy.value is not None
            else Value(None)
        )
    if sum(done):
        cpw = math.fsum(spent) / sum(done)
        low, high = bootstrap_stat_ci([spent, done], _ratio, seed=seed)
        values["cpw"] = Value(cpw, low, high)
    else:
        values["cpw"] = Value(None)
    if seconds:
        import numpy as np

        low, high = bootstrap_stat_ci([seconds], lambda a: float(np.median(a)), seed=seed)
        values["ttr"] = Value(float(np.median(seconds)), low, high)
    else:
        values["ttr"] = Value(None)
    if sum(steps):
        low, high = bootstrap_stat_ci([agent, steps], _ratio, seed=seed)
        values["utilization"] = Value(math.fsum(agent) / math.fsum(steps), low, high)
    else:
        values["utilization"] = Value(None)
    return Point(
        number=number,
        params=dict(params),
        values=values,
        per_item=per_item,
        runs=len(runs),
        completed=len(completed),
        fresh_calls=measured.fresh_calls,
        fresh_cost=measured.fresh_cost,
        wall_seconds=measured.wall_seconds,
        unrecorded=measured.unrecorded,
    )


def _ratio(numerator: Any, denominator: Any) -> float:
    total = float(denominator.sum())
    return float(numerator.sum()) / total if total else 0.0


@dataclass(frozen=True, slots=True)
class Gain:
    """A point minus the baseline on one objective, on the items both measured, turned so that
    above 0 is better: ``low > 0`` is a significant gain, ``high < 0`` a significant loss."""

    objective: str
    n: int
    mean: float
    low: float
    high: float

    @property
    def better(self) -> bool:
        return self.low > 0

    @property
    def worse(self) -> bool:
        return self.high < 0


def gains(point: Point, baseline: Point, objectives: Sequence[str]) -> list[Gain]:
    """The paired gain of ``point`` over ``baseline`` on each objective that both measured."""
    from relayflow.bench.compare import paired

    out = []
    for objective in objectives:
        n, diff = paired(point.per_item.get(objective, {}), baseline.per_item.get(objective, {}))
        if diff is None:
            continue
        out.append(_oriented(objective, n, diff))
    return out


def _oriented(objective: str, n: int, diff: Diff) -> Gain:
    if objective in MAXIMIZE:
        return Gain(objective, n, diff.mean_diff, diff.low, diff.high)
    return Gain(objective, n, -diff.mean_diff, -diff.high, -diff.low)


def dominates_safely(found: Sequence[Gain]) -> bool:
    """At least one significant gain and no significant loss."""
    return any(g.better for g in found) and not any(g.worse for g in found)
