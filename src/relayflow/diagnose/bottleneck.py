"""Which step is the bottleneck, by one written rule, and the knobs the optimizer would turn
for it.

The rule: objectives are considered in the order failures, wrong answers, escalations, TTR,
cost — a run that fails gives no result, a wrong answer is worse than a slow one, and each
escalation costs a person's time and the run's TTR. The first objective that touches at
least ``MATERIAL`` of the runs (failed attempts, wrong answers or escalated runs per run;
TTR and cost whenever there is any) is the one that matters most, unless the user names one.
The bottleneck is the step with the largest share of it (ties: the larger share of TTR)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from relayflow.diagnose.knobs import OBJECTIVE_NAMES, OBJECTIVES, Knob, Objective, step_knobs

if TYPE_CHECKING:
    from relayflow.diagnose.measure import Measured, StepStats
    from relayflow.schema.workflow import Workflow

#: an objective matters once it touches this share of the runs (1 in 100)
MATERIAL = 0.01

RULE = (
    "the first of failures, wrong answers, escalations, TTR, cost that touches at least "
    f"{MATERIAL:.0%} of the runs is the objective; the bottleneck is the step with the largest "
    "share of it (ties: the larger share of TTR)"
)


@dataclass(frozen=True, slots=True)
class Bottleneck:
    step: str
    objective: Objective
    share: float
    #: why, in words: which share of what
    reason: str
    #: the knobs of the step (and of the step whose confidence it gates on) that move the
    #: objective, first; then its other knobs
    knobs: tuple[Knob, ...]
    #: how the objective was chosen: by the rule, or named by the user
    chosen_by: str


def rate(measured: Measured, objective: Objective) -> float:
    """How much of ``objective`` there is per run (per judged run for wrong answers)."""
    totals = measured.totals
    if objective == "failures":
        return measured.total("failures") / totals.runs if totals.runs else 0.0
    if objective == "wrong":
        wrong = measured.total("wrong")
        return wrong / max(totals.judged, 1) if wrong else 0.0
    if objective == "escalations":
        return totals.escalated_runs / totals.runs if totals.runs else 0.0
    return 1.0 if measured.total(objective) > 0 else 0.0


def leader(measured: Measured, objective: Objective) -> StepStats | None:
    """The step with the largest share of ``objective`` (None when no step has any)."""
    candidates = [s for s in measured.steps if s.amount(objective) > 0]
    if not candidates:
        return None
    return max(candidates, key=lambda s: (s.amount(objective), s.seconds))


def find_bottleneck(
    workflow: Workflow, measured: Measured, objective: Objective | None = None
) -> Bottleneck | None:
    """The bottleneck by the rule (or for ``objective``); None when no step has a part in
    any objective (no step ran)."""
    chosen_by = "named with --objective" if objective is not None else "by the rule"
    if objective is None:
        objective = next((o for o in OBJECTIVES if rate(measured, o) >= MATERIAL), None)
    if objective is None:
        return None
    step = leader(measured, objective)
    if step is None:
        return None
    share = measured.share(objective, step) or 0.0
    return Bottleneck(
        step=step.step,
        objective=objective,
        share=share,
        reason=_reason(measured, objective, step, share),
        knobs=knobs_for(workflow, step, objective),
        chosen_by=chosen_by,
    )


def knobs_for(workflow: Workflow, step: StepStats, objective: Objective) -> tuple[Knob, ...]:
    """The step's knobs that move ``objective``, then those of the step whose confidence it
    gates on (when it escalated on one), then the step's other knobs."""
    configs = {a.name: a for a in workflow.agents}
    own = step_knobs(workflow, configs[step.step]) if step.step in configs else ()
    source: tuple[Knob, ...] = ()
    if step.confidence_from is not None and step.confidence_from in configs:
        source = step_knobs(workflow, configs[step.confidence_from])
    moving = [k for k in own if k.moves(objective)]
    moving += [k for k in source if k.moves(objective) or k.moves("escalations")]
    rest = [k for k in own if k not in moving]
    return tuple(moving + rest)


def _reason(measured: Measured, objective: Objective, step: StepStats, share: float) -> str:
    name = OBJECTIVE_NAMES[objective]
    amount = step.amount(objective)
    total = measured.total(objective)
    if objective == "ttr":
        detail = f"{amount:.3g} s of {total:.3g} s of run time"
        if step.review_seconds > 0:
            detail += f", {step.review_seconds:.3g} s of it waiting for review"
    elif objective == "cost":
        detail = f"{amount:.4g} of {total:.4g}"
    else:
        detail = f"{amount:.3g} of {total:.3g}"
    text = f"{step.step} has {share:.0%} of the {name} ({detail})"
    if objective == "escalations" and step.confidence_from is not None:
        text += f"; the confidence it gates on comes from {step.confidence_from}"
    if objective == "failures" and step.top_error is not None:
        text += f"; most often: {step.top_error}"
    return text
