"""The search: the baseline measured first (the pilot that prices the rest), the estimate of
what the study will spend, Optuna's trials within a hard budget (TPE for one objective, NSGA-II
for several), the Pareto front, and the chosen point confirmed on the holdout split."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from relayflow.errors import SpecError
from relayflow.optimize.measure import Measured, Memo, measure
from relayflow.optimize.points import Gain, Point, dominates_safely, figures_of, gains
from relayflow.optimize.space import Knob, Space, configured, search_space
from relayflow.optimize.split import Items, split_items
from relayflow.schema.optimize import MAXIMIZE, Bound, OptimizeSpec

if TYPE_CHECKING:
    import optuna

    from relayflow.core.events import Consumer
    from relayflow.learn.references import References
    from relayflow.schema.workflow import Workflow

MEMO_NAME = "measures.jsonl"


@dataclass(frozen=True, slots=True)
class Settings:
    """What one optimization does: the section's values, with the command's options on top."""

    objectives: tuple[str, ...]
    constraints: Mapping[str, Bound]
    trials: int
    limit: int
    seed: int
    max_calls: int | None = None
    max_cost: float | None = None
    max_time: float | None = None
    concurrency: int = 1


def settings_of(workflow: Workflow, **options: Any) -> Settings:
    """The workflow's ``optimize:`` section (or its defaults) with every option that is not
    None replacing its value; objective names made canonical (``accuracy`` -> ``metric``)."""
    from relayflow.spec.validate_optimize import canonical_objective

    section = workflow.spec.optimize or OptimizeSpec()
    chosen = {k: v for k, v in options.items() if v is not None}
    objectives = tuple(canonical_objective(workflow.spec, o) for o in section.objectives)
    constraints = {canonical_objective(workflow.spec, k): v for k, v in section.constraints.items()}
    return Settings(
        objectives=objectives,
        constraints=constraints,
        trials=chosen.get("trials", section.trials),
        limit=chosen.get("limit", section.limit),
        seed=chosen.get("seed", section.seed),
        max_calls=chosen.get("max_calls", section.max_calls),
        max_cost=chosen.get("max_cost", section.max_cost),
        max_time=chosen.get("max_time", section.max_time),
        concurrency=chosen.get("concurrency", 1),
    )


@dataclass(frozen=True, slots=True)
class Estimate:
    """What the study will spend after the baseline: fresh model calls, cost (the prices' unit)
    and wall seconds; each trial re-runs only the steps its knobs reach, the rest is cached."""

    trials: int
    calls: int
    cost: float
    seconds: float
    trial_calls: float
    trial_cost: float
    trial_seconds: float
    holdout_calls: float
    holdout_cost: float
    holdout_seconds: float


@dataclass(frozen=True, slots=True)
class Holdout:
    """The chosen point and the baseline re-measured on the holdout split."""

    baseline: Point
    chosen: Point
    gains: tuple[Gain, ...]
    recommended: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Outcome:
    workflow: str
    file: str
    settings: Settings
    space: Space
    split: str
    dev_items: int
    holdout_items: int
    baseline: Point
    points: tuple[Point, ...]
    front: tuple[Point, ...]
    estimate: Estimate
    pilot_seconds: float
    pilot_calls: int
    #: after the baseline: what the study spent, and why it stopped early (None: it did not)
    spent_calls: int
    spent_cost: float
    spent_seconds: float
    stopped: str | None
    chosen: Point | None
    chosen_gains: tuple[Gain, ...]
    verdict: str
    holdout: Holdout | None
    references: str
    notes: tuple[str, ...] = ()
    dev_gains: Mapping[int, tuple[Gain, ...]] = field(default_factory=dict)


class Watcher(Protocol):
    """What the search tells whoever shows its progress."""

    def estimated(self, estimate: Estimate, baseline: Point) -> None: ...

    def phase(self, label: str, items: int) -> None: ...

    def trial_done(self, point: Point, done: int, total: int) -> None: ...

    @property
    def consumers(self) -> Sequence[Consumer]: ...


class Quiet:
    """A watcher that shows nothing."""

    consumers: Sequence[Consumer] = ()

    def estimated(self, estimate: Estimate, baseline: Point) -> None:
        return None

    def phase(self, label: str, items: int) -> None:
        return None

    def trial_done(self, point: Point, done: int, total: int) -> None:
        return None


def check_ready(workflow: Workflow) -> None:
    """A SpecError (file:line) when the workflow has no evaluate metric or no dev split."""
    from relayflow.spec.validate_optimize import readiness_problems

    root = workflow.extends or workflow.file
    problems = readiness_problems(workflow.spec, workflow.lines, str(root), workflow.base_dir)
    if problems:
        raise SpecError(problems)


async def optimize(
    workflow: Workflow,
    *,
    out: Path,
    store: str,
    settings: Settings,
    watcher: Watcher | None = None,
) -> Outcome:
    """Search ``workflow``'s settings; see the module's docstring."""
    from relayflow.learn.references import References

    check_ready(workflow)
    watch = watcher or Quiet()
    space = search_space(workflow)
    items = await split_items(workflow, settings.limit)
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before anything runs
    memo = Memo(out / MEMO_NAME)
    references = References(workflow.spec.evaluate, workflow.base_dir)
    study = _Study(workflow, space, settings, items, memo, store, references, watch)
    return await study.run()


class _Study:
    def __init__(
        self,
        workflow: Workflow,
        space: Space,
        settings: Settings,
        items: Items,
        memo: Memo,
        store: str,
        references: References,
        watch: Watcher,
    ) -> None:
        self.workflow, self.space, self.settings, self.items = workflow, space, settings, items
        self.memo, self.store, self.references, self.watch = memo, store, references, watch
        self.rate = workflow.spec.compute_rate_per_cpu_second
        self.notes: list[str] = []

    async def _measure(
        self, values: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], number: int
    ) -> tuple[Point, Measured]:
        derived = configured(self.workflow, values, self.space)
        measured = await measure(
            derived,
            rows,
            store=self.store,
            memo=self.memo,
            concurrency=self.settings.concurrency,
            consumers=self.watch.consumers,
        )
        point = figures_of(
            number,
            values,
            measured,
            self.workflow.spec.evaluate,
            self.references,
            self.rate,
            self.settings.seed,
        )
        violations = {
            name: bound.violation(point.value(name))
            for name, bound in self.settings.constraints.items()
        }
        return _with(point, violations=violations), measured

    async def run(self) -> Outcome:
        import optuna

        settings = self.settings
        dev, holdout = self.items.dev, self.items.holdout
        self.watch.phase("baseline", len(dev))
        baseline, pilot = await self._measure(self.space.baseline(), dev, 0)
        # the same setting again is all cache hits: what a setting costs beyond its steps
        self.watch.phase("baseline from the cache", len(dev))
        replay_started = time.perf_counter()
        _again, replay = await self._measure(self.space.baseline(), dev, 0)
        # its figures (the bootstrap intervals) are part of what every setting costs
        replay = dataclasses.replace(replay, wall_seconds=time.perf_counter() - replay_started)
        self.watch.trial_done(baseline, 1, settings.trials)
        estimate = self._estimate(pilot, replay, len(dev), len(holdout))
        pilot = dataclasses.replace(pilot, wall_seconds=pilot.wall_seconds + replay.wall_seconds)
        self.watch.estimated(estimate, baseline)
        if baseline.unrecorded:
            self.notes.append(
                f"{baseline.unrecorded} cached steps had no recorded cost (cached before "
                f"this output folder's {MEMO_NAME}): they count as free"
            )

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            directions=["maximize" if o in MAXIMIZE else "minimize" for o in settings.objectives],
            sampler=self._sampler(),
        )
        distributions = {k.name: _distribution(k) for k in self.space.knobs}
        self._add_baseline(study, baseline, distributions)
        points = [baseline]
        seen: dict[str, Point] = {_params_key(baseline.params): baseline}
        started = time.perf_counter()
        calls, cost = 0, 0.0
        stopped: str | None = None
        if not self.space.knobs:
            stopped = "nothing to vary: the workflow has no knob (see `optimize.search`)"
        for number in range(1, settings.trials if self.space.knobs else 1):
            why = self._over_budget(estimate, calls, cost, time.perf_counter() - started, pilot)
            if why is not None:
                stopped = why
                break
            trial = study.ask(distributions)
            params = dict(trial.params)
            known = seen.get(_params_key(params))
            if known is not None:
                point = _with(known, number=number)
            else:
                self.watch.phase(f"trial {number + 1}/{settings.trials}", len(dev))
                point, measured = await self._measure(params, dev, number)
                calls += measured.fresh_calls
                cost += measured.fresh_cost
                seen[_params_key(params)] = point
            trial.set_user_attr(
                "constraints", [point.violations.get(n, 0.0) for n in settings.constraints]
            )
            values = [point.value(o) for o in settings.objectives]
            if any(v is None or not math.isfinite(v) for v in values):
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, [float(v) for v in values if v is not None])
            points.append(point)
            self.watch.trial_done(point, number + 1, settings.trials)

        front = pareto_front(points, settings.objectives)
        chosen, chosen_gains, verdict, dev_gains = self._choose(front, baseline)
        confirmed: Holdout | None = None
        if chosen is not None:
            why = self._over_budget(
                estimate, calls, cost, time.perf_counter() - started, pilot, trial=False
            )
            if why is not None:
                verdict += f"; not confirmed on the holdout split ({why})"
            else:
                confirmed, spent = await self._confirm(chosen, chosen_gains, holdout)
                calls += spent[0]
                cost += spent[1]
        return Outcome(
            workflow=self.workflow.name,
            file=str(self.workflow.file),
            settings=settings,
            space=self.space,
            split=self.items.how,
            dev_items=len(dev),
            holdout_items=len(holdout),
            baseline=baseline,
            points=tuple(points),
            front=tuple(front),
            estimate=estimate,
            pilot_seconds=pilot.wall_seconds,
            pilot_calls=pilot.fresh_calls,
            spent_calls=calls,
            spent_cost=cost,
            spent_seconds=time.perf_counter() - started,
            stopped=stopped,
            chosen=chosen,
            chosen_gains=tuple(chosen_gains),
            verdict=verdict,
            holdout=confirmed,
            references=self.references.source,
            notes=tuple(self.notes),
            dev_gains=dev_gains,
        )

    def _sampler(self) -> optuna.samplers.BaseSampler:
        import optuna

        settings = self.settings

        def constraints(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
            return list(trial.user_attrs.get("constraints", [0.0] * len(settings.constraints)))

        func = constraints if settings.constraints else None
        if len(settings.objectives) == 1:
            startup = max(2, min(10, settings.trials // 3))
            return optuna.samplers.TPESampler(
                seed=settings.seed, constraints_func=func, n_startup_trials=startup
            )
        population = max(2, min(50, (settings.trials - 1) // 3 or 2))
        return optuna.samplers.NSGAIISampler(
            seed=settings.seed, constraints_func=func, population_size=population
        )

    def _add_baseline(
        self,
        study: optuna.Study,
        baseline: Point,
        distributions: Mapping[str, optuna.distributions.BaseDistribution],
    ) -> None:
        """Tell the sampler what the workflow as written scored, when it lies in the space
        (a range written in the section may leave it out)."""
        import optuna

        values = [baseline.value(o) for o in self.settings.objectives]
        knobs = {k.name: k for k in self.space.knobs}
        inside = all(knobs[n].holds(v) for n, v in baseline.params.items() if n in knobs)
        if not knobs or not inside or any(v is None for v in values):
            return
        params = {n: _in_distribution(knobs[n], v) for n, v in baseline.params.items()}
        attrs = {
            "constraints": [baseline.violations.get(n, 0.0) for n in self.settings.constraints]
        }
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=dict(distributions),
                values=[float(v) for v in values if v is not None],
                user_attrs=attrs,
            )
        )

    def _estimate(self, pilot: Measured, replay: Measured, dev: int, holdout: int) -> Estimate:
        """The rest of the study, priced from the baseline's steps (each trial's figures are
        for one that reaches every knob). A step runs afresh only
        for a combination of the knobs that reach it (its own and those before it) not seen
        yet, and Optuna's draws repeat some: for a knob of ``c`` values, ``n`` draws hold
        about ``c (1 - (1 - 1/c)^n)`` distinct ones. The holdout runs the baseline afresh
        and then what the chosen setting's knobs reach."""
        draws = max(0, self.settings.trials - 1) if self.space.knobs else 0
        steps = pilot.steps
        reach = knobs_reaching(self.workflow, self.space)
        trial_calls = trial_cost = trial_seconds = 0.0
        calls = cost = seconds = 0.0
        for name, step in steps.items():
            knobs = reach.get(name, ())
            if not knobs:
                continue
            combos = 1
            for knob in knobs:
                combos = min(1_000_000, combos * _cardinality(knob))
            new = _new_distinct(combos, draws)
            calls, cost, seconds = (
                calls + new * step.calls,
                cost + new * step.cost,
                seconds + new * pilot.typical_seconds(name),
            )
            trial_calls += step.calls
            trial_cost += step.cost
            trial_seconds += pilot.typical_seconds(name)
        # the runner's own time per setting (cached steps, the store, the reviewer): the
        # baseline's second pass, answered from the cache
        overhead = replay.wall_seconds
        settings = _new_distinct(distinct_settings(self.space), draws)
        seconds += settings * overhead
        trial_seconds += overhead
        # the holdout: the baseline afresh, then the chosen setting re-runs what its knobs
        # reach (the rest it finds in the cache the baseline just filled)
        scale = holdout / dev if dev else 0.0
        step_seconds = sum(pilot.typical_seconds(name) for name in steps)
        holdout_calls = (sum(s.calls for s in steps.values()) + trial_calls) * scale
        holdout_cost = (sum(s.cost for s in steps.values()) + trial_cost) * scale
        holdout_seconds = (step_seconds + trial_seconds + overhead) * scale
        return Estimate(
            trials=draws,
            calls=round(calls + holdout_calls),
            cost=cost + holdout_cost,
            seconds=seconds + holdout_seconds,
            trial_calls=trial_calls,
            trial_cost=trial_cost,
            trial_seconds=trial_seconds,
            holdout_calls=holdout_calls,
            holdout_cost=holdout_cost,
            holdout_seconds=holdout_seconds,
        )

    def _over_budget(
        self,
        estimate: Estimate,
        calls: int,
        cost: float,
        elapsed: float,
        pilot: Measured,
        *,
        trial: bool = True,
    ) -> str | None:
        """Why one more trial (or, ``trial=False``, the holdout) would break the hard budget."""
        s = self.settings
        calls_next = (estimate.trial_calls if trial else 0) + estimate.holdout_calls
        cost_next = (estimate.trial_cost if trial else 0) + estimate.holdout_cost
        time_next = (estimate.trial_seconds if trial else 0) + estimate.holdout_seconds
        what = "another trial and the holdout" if trial else "the holdout"
        spent_calls = pilot.fresh_calls + calls
        if s.max_calls is not None and spent_calls + calls_next > s.max_calls:
            return (
                f"--max-calls {s.max_calls}: {spent_calls} spent, {what} need about "
                f"{calls_next:.0f}"
            )
        spent_cost = pilot.fresh_cost + cost
        if s.max_cost is not None and spent_cost + cost_next > s.max_cost:
            return (
                f"--max-cost {s.max_cost:g}: {spent_cost:.4g} spent, {what} need about "
                f"{cost_next:.4g}"
            )
        spent_time = pilot.wall_seconds + elapsed
        if s.max_time is not None and spent_time + time_next > s.max_time:
            return (
                f"--max-time {s.max_time:g}: {spent_time:.0f} s spent, {what} need about "
                f"{time_next:.0f} s"
            )
        return None

    def _choose(
        self, front: Sequence[Point], baseline: Point
    ) -> tuple[Point | None, list[Gain], str, dict[int, tuple[Gain, ...]]]:
        """The front's point with the most significant gains over the baseline and no
        significant loss (on the dev split), or None and why not."""
        objectives = self.settings.objectives
        dev_gains: dict[int, tuple[Gain, ...]] = {}
        best: tuple[tuple[int, float], Point, list[Gain]] | None = None
        for point in front:
            if _params_key(point.params) == _params_key(baseline.params):
                continue
            found = gains(point, baseline, objectives)
            dev_gains[point.number] = tuple(found)
            if not point.feasible or not dominates_safely(found):
                continue
            score = (sum(g.better for g in found), sum(_strength(g) for g in found))
            if best is None or score > best[0]:
                best = (score, point, found)
        if best is None:
            if not self.space.knobs:
                return None, [], "nothing to vary", dev_gains
            return (
                None,
                [],
                (
                    "no point of the front improves an objective significantly without losing "
                    "significantly on another (95 % paired bootstrap on the dev split)"
                ),
                dev_gains,
            )
        _score, point, found = best
        better = ", ".join(g.objective for g in found if g.better)
        return point, found, f"trial {point.number} improves {better} on the dev split", dev_gains

    async def _confirm(
        self, chosen: Point, dev_gains: Sequence[Gain], rows: Sequence[Mapping[str, Any]]
    ) -> tuple[Holdout, tuple[int, float]]:
        self.watch.phase("holdout: baseline", len(rows))
        base, m1 = await self._measure(self.space.baseline(), rows, 0)
        self.watch.phase(f"holdout: trial {chosen.number}", len(rows))
        point, m2 = await self._measure(chosen.params, rows, chosen.number)
        found = gains(point, base, self.settings.objectives)
        aimed = {g.objective for g in dev_gains if g.better}
        confirmed = [g for g in found if g.objective in aimed and g.better]
        lost = [g for g in found if g.worse]
        if not point.feasible:
            broken = ", ".join(n for n, v in point.violations.items() if v > 0)
            recommended, reason = False, f"on the holdout split it breaks a constraint ({broken})"
        elif not confirmed:
            recommended = False
            reason = (
                f"on the holdout split the lower bound of its gain in {', '.join(sorted(aimed))} "
                "is not above 0"
            )
        elif lost:
            recommended = False
            names = ", ".join(g.objective for g in lost)
            reason = f"on the holdout split it loses significantly on {names}"
        else:
            recommended = True
            reason = "on the holdout split it gains on " + ", ".join(
                f"{g.objective} (lower bound {g.low:+.4g})" for g in confirmed
            )
        spent = (m1.fresh_calls + m2.fresh_calls, m1.fresh_cost + m2.fresh_cost)
        return Holdout(base, point, tuple(found), recommended, reason), spent


def _strength(gain: Gain) -> float:
    width = gain.high - gain.low
    return gain.mean / width if width > 0 else (1.0 if gain.mean > 0 else 0.0)


def _with(point: Point, **changes: Any) -> Point:
    import dataclasses

    return dataclasses.replace(point, **changes)


def _params_key(params: Mapping[str, Any]) -> str:
    import json

    return json.dumps({k: params[k] for k in sorted(params)}, default=str)


def _distribution(knob: Knob) -> optuna.distributions.BaseDistribution:
    import optuna

    if knob.kind == "choice":
        return optuna.distributions.CategoricalDistribution(list(knob.choices))
    if knob.kind == "int":
        step = int(knob.step) if knob.step and not knob.log else 1
        return optuna.distributions.IntDistribution(
            int(knob.low), int(knob.high), log=knob.log, step=step
        )
    return optuna.distributions.FloatDistribution(
        knob.low, knob.high, log=knob.log, step=None if knob.log else knob.step
    )


def _in_distribution(knob: Knob, value: Any) -> Any:
    if knob.kind == "int":
        return int(value)
    if knob.kind == "float":
        return float(value)
    return value


def distinct_settings(space: Space) -> int:
    """How many different settings the space holds (bounded: a float range counts as many)."""
    total = 1
    for knob in space.knobs:
        if knob.kind == "choice":
            total *= len(knob.choices)
        elif knob.kind == "int" and not knob.log:
            step = int(knob.step or 1)
            total *= int((knob.high - knob.low) // step) + 1
        elif knob.kind == "float" and knob.step:
            total *= int(round((knob.high - knob.low) / knob.step)) + 1
        else:
            return 1_000_000
        if total >= 1_000_000:
            return 1_000_000
    return total


def knobs_reaching(workflow: Workflow, space: Space) -> dict[str, tuple[Knob, ...]]:
    """For each step, the knobs that can change what it does: its own, and those of every
    step before it (a changed upstream output is a new input)."""
    own: dict[str, list[Knob]] = {a.name: [] for a in workflow.agents}
    for knob in space.knobs:
        if knob.where == "agent":
            owners = {knob.owner}
        elif knob.where == "variant":
            owners = {name for v in workflow.spec.variants for name in v.agents}
        else:
            owners = {a.name for a in workflow.agents if getattr(a, "model", None) == knob.owner}
            for other in space.knobs:  # a model knob may put the router on the step
                if other.setting == "model" and knob.owner in other.choices:
                    owners.add(other.owner)
        for name in owners:
            own.setdefault(name, []).append(knob)
    from relayflow.optimize.measure import ancestors

    above = ancestors(workflow.depends_on)
    out: dict[str, tuple[Knob, ...]] = {}
    for name in own:
        found = {k.name: k for k in own[name]}
        for parent in above.get(name, ()):
            found.update({k.name: k for k in own.get(parent, [])})
        out[name] = tuple(found.values())
    return out


def _cardinality(knob: Knob) -> int:
    if knob.kind == "choice":
        return len(knob.choices)
    if knob.kind == "int":
        return int(knob.high - knob.low) // int(knob.step or 1) + 1
    if knob.step:
        return int(round((knob.high - knob.low) / knob.step)) + 1
    return 1_000_000


def _new_distinct(values: int, draws: int) -> float:
    """About how many values other than the baseline's ``draws`` draws from ``values`` hold."""
    if values <= 1 or draws <= 0:
        return 0.0
    distinct = values * (1 - (1 - 1 / values) ** draws)
    return min(float(draws), distinct * (values - 1) / values)


def pareto_front(points: Sequence[Point], objectives: Sequence[str]) -> list[Point]:
    """The measured points that no other dominates, feasible ones first: with any feasible
    point, only feasible ones (as Optuna ranks constrained trials); one per setting."""
    unique: dict[str, Point] = {}
    for point in points:
        unique.setdefault(_params_key(point.params), point)
    measured = [p for p in unique.values() if all(p.value(o) is not None for o in objectives)]
    feasible = [p for p in measured if p.feasible]
    pool = feasible or measured

    def better_or_equal(a: Point, b: Point, objective: str) -> bool:
        va, vb = a.value(objective), b.value(objective)
        assert va is not None and vb is not None  # noqa: S101 - measured points only
        return va >= vb if objective in MAXIMIZE else va <= vb

    def dominates(a: Point, b: Point) -> bool:
        return all(better_or_equal(a, b, o) for o in objectives) and any(
            not better_or_equal(b, a, o) for o in objectives
        )

    front = [p for p in pool if not any(dominates(q, p) for q in pool if q is not p)]
    # settings that measure the same on every objective are one point (the first tried)
    same: dict[tuple[float | None, ...], Point] = {}
    for point in sorted(front, key=lambda p: p.number):
        same.setdefault(tuple(point.value(o) for o in objectives), point)
    front = list(same.values())
    return sorted(front, key=lambda p: p.number)
