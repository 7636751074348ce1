"""Each step's part in recorded runs, read from the run store: its seconds, model cost and
compute, failed attempts, the escalations it caused and the wrong answers it wrote.

Attribution, per run:
- **time**: a step's seconds are its record's end minus its start; a step a person decided runs
  from its escalation to the decision, so its seconds are the wait for the review.
- **cost**: the model cost the step recorded, plus its wall seconds (a person's aside) times
  ``compute_rate_per_cpu_second`` — an estimate, since the store keeps no CPU time per step.
- **failures**: failed attempts (an attempt retried, or the last one of a step that failed).
- **escalations**: the step whose verdict parked the run. A ``human_review`` step without
  ``when:`` parks what an upstream check flagged: the flagging steps are charged (equally),
  else the review step itself (it parked on the confidence it was handed).
- **wrong answers**: the agents' value of ``evaluate.prediction`` (before any review) scored
  against the reference, each item's shortfall (1 - its score; 1 for a wrong label) charged to
  the step that last wrote the field; with pass@k, to the nearest inference step upstream of
  it (the code the tests judged). A field a reviewer corrected charges its writer too; a run
  is charged at most once per step.
"""

from __future__ import annotations

import graphlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relayflow.diagnose.knobs import Objective
from relayflow.eval.stats import median

if TYPE_CHECKING:
    from relayflow.learn.references import References
    from relayflow.schema.workflow import Workflow
    from relayflow.store.protocol import RunStore
    from relayflow.store.records import ReviewRecord, RunRecord, StepRecord

#: agent types that gate items for a person rather than produce them: never the source of
#: the confidence a gate reads
GATES = frozenset({"quality_check", "human_review"})
_MISSING = object()
#: an error is quoted up to this many characters
MAX_ERROR = 200


@dataclass(frozen=True, slots=True)
class StepStats:
    """One step over the diagnosed runs."""

    step: str
    agent_type: str
    #: runs with a record of this step
    runs: int = 0
    seconds: float = 0.0
    median_seconds: float | None = None
    #: of ``seconds``, the wait for a person's decision
    review_seconds: float = 0.0
    model_seconds: float = 0.0
    model_cost: float = 0.0
    compute_cost: float = 0.0
    failures: int = 0
    #: runs that ended failed at this step
    failed_runs: int = 0
    escalations: float = 0.0
    wrong: float = 0.0
    #: runs in which a reviewer changed a field this step wrote
    corrected: int = 0
    #: the step whose confidence this gate read, in most of the runs it escalated
    confidence_from: str | None = None
    #: the error its failed runs ended with most often
    top_error: str | None = None

    @property
    def cost(self) -> float:
        return self.model_cost + self.compute_cost

    def amount(self, objective: Objective) -> float:
        return {
            "ttr": self.seconds,
            "cost": self.cost,
            "failures": float(self.failures),
            "escalations": self.escalations,
            "wrong": self.wrong,
        }[objective]


@dataclass(frozen=True, slots=True)
class Totals:
    """The diagnosed runs as a whole. ``run_seconds`` sums each run's first step start to its
    last step end: the denominator of the TTR shares (steps that overlap can sum past it)."""

    runs: int
    by_status: Mapping[str, int]
    run_seconds: float
    ttr_median: float | None
    escalated_runs: int
    #: runs whose prediction had a reference to be judged against
    judged: int
    metric: str | None
    #: the agents' metric over the judged runs, before any review
    agent_score: float | None


@dataclass(frozen=True, slots=True)
class Measured:
    steps: tuple[StepStats, ...]
    totals: Totals
    notes: tuple[str, ...] = ()

    def total(self, objective: Objective) -> float:
        if objective == "ttr":
            return self.totals.run_seconds
        return sum(s.amount(objective) for s in self.steps)

    def share(self, objective: Objective, step: StepStats) -> float | None:
        total = self.total(objective)
        return step.amount(objective) / total if total > 0 else None


@dataclass(slots=True)
class _Tally:
    agent_type: str
    runs: int = 0
    durations: list[float] = field(default_factory=list)
    review_seconds: float = 0.0
    model_seconds: float = 0.0
    model_cost: float = 0.0
    compute_cost: float = 0.0
    failures: int = 0
    failed_runs: int = 0
    escalations: float = 0.0
    wrong: float = 0.0
    corrected: int = 0
    sources: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def freeze(self, step: str) -> StepStats:
        source = self.sources.most_common(1)[0][0] if self.sources else None
        return StepStats(
            step=step,
            agent_type=self.agent_type,
            runs=self.runs,
            seconds=sum(self.durations),
            median_seconds=median(self.durations) if self.durations else None,
            review_seconds=self.review_seconds,
            model_seconds=self.model_seconds,
            model_cost=self.model_cost,
            compute_cost=self.compute_cost,
            failures=self.failures,
            failed_runs=self.failed_runs,
            escalations=self.escalations,
            wrong=self.wrong,
            corrected=self.corrected,
            confidence_from=source,
            top_error=self.errors.most_common(1)[0][0] if self.errors else None,
        )


def plan_order(workflow: Workflow) -> list[str]:
    """The steps in an order that puts each after those it depends on (file order on ties)."""
    sorter = graphlib.TopologicalSorter(
        {a.name: workflow.depends_on.get(a.name, ()) for a in workflow.agents}
    )
    position = {a.name: i for i, a in enumerate(workflow.agents)}
    sorter.prepare()
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=lambda n: position.get(n, len(position)))
        order.extend(ready)
        sorter.done(*ready)
    return order


def measure(
    workflow: Workflow,
    store: RunStore,
    runs: Sequence[RunRecord],
    references: References | None,
) -> Measured:
    """The step statistics of ``runs`` (records of ``workflow`` in ``store``)."""
    order = plan_order(workflow)
    configs = {a.name: a for a in workflow.agents}
    tallies = {name: _Tally(configs[name].type) for name in order}
    records = store.steps_of([r.run_id for r in runs])
    rate = workflow.spec.compute_rate_per_cpu_second
    notes: list[str] = []
    ttrs: list[float] = []
    run_seconds = 0.0
    escalated = 0
    scores: list[float] = []
    scoring = _Scoring(workflow, references, notes)
    for run in runs:
        steps = sorted(
            records.get(run.run_id, []),
            key=lambda s: order.index(s.step) if s.step in order else len(order),
        )
        for record in steps:
            tally = tallies.setdefault(record.step, _Tally(record.agent_type or "?"))
            _time_and_cost(tally, record, rate)
        span = _span(steps)
        if span is not None:
            run_seconds += span
            if run.status == "succeeded":
                ttrs.append(span)
        gates = [s for s in steps if s.status == "escalated" or s.actor == "human"]
        if gates:
            escalated += 1
        for gate in gates:
            _escalation(tallies, gate, steps, configs)
        reviews = {g.step: _review(store, run.run_id, g.step) for g in gates if g.actor == "human"}
        writers, agent_values, final = _writers(run, steps, reviews)
        charged: dict[str, float] = {}
        for review in reviews.values():
            for key in _corrected_fields(review):
                writer = writers.get(key)
                if writer is not None:
                    tallies[writer].corrected += 1
                    charged[writer] = 1.0
        judged = scoring.judge(final, agent_values, writers, order, configs)
        if judged is not None:
            writer, item_score = judged
            scores.append(item_score)
            if writer is not None:
                charged[writer] = max(charged.get(writer, 0.0), 1.0 - item_score)
        for writer, amount in charged.items():
            tallies[writer].wrong += amount
    if scoring.unattributed:
        notes.append(
            f"{scoring.unattributed} wrong answer(s) came as they were from the input: no step "
            "wrote the prediction field"
        )
    names = [n for n in order] + [n for n in tallies if n not in order]
    statuses = Counter(r.status for r in runs)
    totals = Totals(
        runs=len(runs),
        by_status=dict(statuses),
        run_seconds=run_seconds,
        ttr_median=median(ttrs) if ttrs else None,
        escalated_runs=escalated,
        judged=len(scores),
        metric=scoring.metric,
        agent_score=sum(scores) / len(scores) if scores else None,
    )
    stats = tuple(tallies[n].freeze(n) for n in names)
    return Measured(stats, totals, tuple(notes + scoring.notes))


def _time_and_cost(tally: _Tally, record: StepRecord, rate: float) -> None:
    tally.runs += 1
    tally.model_seconds += record.model_seconds
    tally.model_cost += record.cost
    if record.status == "failed":
        tally.failures += max(1, record.attempt)
        tally.failed_runs += 1
        if record.error:
            tally.errors[record.error[:MAX_ERROR]] += 1
    elif record.attempt > 1:
        tally.failures += record.attempt - 1
    if record.started is not None and record.ended is not None:
        seconds = max(0.0, record.ended - record.started)
        tally.durations.append(seconds)
        if record.actor == "human":
            tally.review_seconds += seconds
        else:
            tally.compute_cost += seconds * rate


def _span(steps: Sequence[StepRecord]) -> float | None:
    starts = [s.started for s in steps if s.started is not None]
    ends = [s.ended for s in steps if s.ended is not None] + starts
    if not starts:
        return None
    return max(0.0, max(ends) - min(starts))


def _escalation(
    tallies: dict[str, _Tally],
    gate: StepRecord,
    steps: Sequence[StepRecord],
    configs: Mapping[str, Any],
) -> None:
    """Charge the escalation at ``gate`` to the step whose verdict caused it."""
    before = steps[: steps.index(gate)]
    config = configs.get(gate.step)
    causes = [gate.step]
    if gate.agent_type == "human_review" and getattr(config, "when", None) is None:
        flagged = [s.step for s in before if s.flags]
        causes = flagged or causes
    for cause in causes:
        tally = tallies.setdefault(cause, _Tally(gate.agent_type))
        tally.escalations += 1 / len(causes)
    last_cause = max(steps.index(next(s for s in steps if s.step == c)) for c in causes)
    source = next(
        (
            s.step
            for s in reversed(steps[:last_cause])
            if s.confidence is not None and s.agent_type not in GATES and s.actor != "human"
        ),
        None,
    )
    if source is not None:
        for cause in causes:
            tallies[cause].sources[source] += 1


def _review(store: RunStore, run_id: str, step: str) -> ReviewRecord | None:
    review = store.get_review(f"{run_id}:{step}")
    return review if review is not None and review.decided_output is not None else None


def _corrected_fields(review: ReviewRecord | None) -> list[str]:
    """The fields a reviewer changed (none when they approved)."""
    if review is None or review.decision != "correct" or review.decided_output is None:
        return []
    before, after = review.output, review.decided_output
    return [k for k, v in after.items() if before.get(k, _MISSING) != v]


def _writers(
    run: RunRecord,
    steps: Sequence[StepRecord],
    reviews: Mapping[str, ReviewRecord | None],
) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
    """Per field: the agent step that last changed it and the value it left (a person's
    decisions pass through without becoming anyone's writing); and the run's final data."""
    seen: dict[str, Any] = dict(run.input)
    writers: dict[str, str] = {}
    values: dict[str, Any] = {}
    for record in steps:
        review = reviews.get(record.step)
        if record.actor == "human":
            agent_output = review.output if review is not None else None
        else:
            agent_output = record.output
        for key, value in (agent_output or {}).items():
            if seen.get(key, _MISSING) != value:
                writers[key] = record.step
                values[key] = value
                seen[key] = value
        if record.actor == "human":
            seen.update(record.output or {})
    final = dict(run.output) if run.output is not None else seen
    return writers, values, final


class _Scoring:
    """Each run's prediction scored against its reference with the ``evaluate:`` metric."""

    def __init__(self, workflow: Workflow, references: References | None, notes: list[str]):
        self.evaluate = workflow.spec.evaluate
        self.references = references
        self.metric = self.evaluate.metric if self.evaluate is not None else None
        self.notes: list[str] = []
        if self.metric == "f1":  # a corpus metric: one item is right or wrong
            self.metric = "accuracy"
            self.notes.append("f1 is a metric of the whole set: each item is judged right or wrong")
        self.unattributed = 0
        self._unscorable = 0
        self._notes = notes

    def judge(
        self,
        final: Mapping[str, Any],
        agent_values: Mapping[str, Any],
        writers: Mapping[str, str],
        order: Sequence[str],
        configs: Mapping[str, Any],
    ) -> tuple[str | None, float] | None:
        """(the step charged, the item's score), or None when the run has no reference."""
        from relayflow.errors import RelayflowError
        from relayflow.eval.scoring import score

        evaluate = self.evaluate
        if evaluate is None or self.references is None:
            return None
        field_ = evaluate.prediction
        prediction = agent_values.get(field_, final.get(field_))
        writer = writers.get(field_)
        try:
            if evaluate.metric == "pass_at_k":
                if prediction is None:
                    return None
                result = score("pass_at_k", [prediction], None, k=1)
                writer = _upstream_inference(writer, order, configs)
            else:
                reference = self.references.lookup(final)
                if reference is None:
                    return None
                # f1's per-item value is a hit, as accuracy's: scored alone, without sklearn
                metric = "accuracy" if evaluate.metric == "f1" else evaluate.metric
                result = score(metric, [prediction], [reference], k=evaluate.k)
        except RelayflowError as exc:
            self._unscorable += 1
            if self._unscorable == 1:
                self.notes.append(f"some predictions could not be scored: {exc}")
            return None
        item = result.per_item[0] if result.per_item else result.value
        if writer is None and item < 1.0:
            self.unattributed += 1
        return writer, float(item)


def _upstream_inference(
    writer: str | None, order: Sequence[str], configs: Mapping[str, Any]
) -> str | None:
    """The nearest inference step at or before ``writer`` (pass@k's field is written by the
    tests, but the code they judged came from a model)."""
    if writer is None or writer not in order:
        return writer
    for name in reversed(order[: order.index(writer) + 1]):
        config = configs.get(name)
        if config is not None and config.type == "inference":
            return name
    return writer
