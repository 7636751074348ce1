"""Who answered each item of a routed step, and how well: per step whose model is a router,
each candidate (tier) with the share of the items whose answer it gave and the ``evaluate``
metric on them; a person is the tier of the items a reviewer decided after that step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relayflow.bench.collector import RunMeasure, as_agents_left_it
from relayflow.bench.reviewer import Accuracy, measure_accuracy

if TYPE_CHECKING:
    from relayflow.learn.references import References
    from relayflow.schema.file import EvaluateSpec
    from relayflow.schema.workflow import Workflow

#: the tier of an item a reviewer decided (approved or corrected) after the routed step
PERSON = "person"
#: the tier of an item that waits for a reviewer (a bench without one): nobody decided it
PARKED = "parked"


@dataclass(frozen=True, slots=True)
class Tier:
    """One tier of a routed step: ``items`` of the step's items (``share`` of them) ended with
    its answer; ``accuracy`` is the metric of those items' outputs. For the person tier,
    ``before_review`` is the metric of what the agents had answered before the decision, and
    ``answered_by`` counts the candidates whose answers were reviewed."""

    name: str
    items: int
    share: float
    accuracy: Accuracy
    #: the ``alias=version`` values seen (a retrained candidate has several)
    versions: tuple[str, ...] = ()
    #: candidate tiers: their answers that a person then decided (counted under ``person``)
    escalated: int = 0
    before_review: Accuracy | None = None


@dataclass(frozen=True, slots=True)
class StepTiers:
    """The tiers of one routed step over the runs in which it answered."""

    step: str
    model: str | None
    items: int
    tiers: tuple[Tier, ...]


def routed_steps(workflow: Workflow) -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """``step -> (router alias, its candidates)`` for the steps whose model is a router."""
    from relayflow.providers.router_config import RouterConfig

    out: dict[str, tuple[str | None, tuple[str, ...]]] = {}
    for agent in workflow.agents:
        alias = getattr(agent, "model", None)
        spec = workflow.spec.models.get(alias) if isinstance(alias, str) else None
        if isinstance(spec, RouterConfig):
            out[agent.name] = (alias, tuple(spec.candidates))
    return out


def tier_of(run: RunMeasure, step: str) -> str | None:
    """The tier that gave ``run`` its answer at ``step``: the candidate's alias, ``person``
    when a reviewer decided after the step, ``parked`` when the run still waits for one; None
    when the step did not answer."""
    answered_by = run.answered_by.get(step)
    if answered_by is None:
        return None
    ended = max((s.ended for s in run.steps if s.step == step), default=None)
    if ended is not None and any(s.actor == "human" and s.ended >= ended for s in run.steps):
        return PERSON
    if run.status == "waiting_review":
        return PARKED
    return candidate(answered_by)


def candidate(answered_by: str) -> str:
    """The router's candidate in ``alias=version`` (a nested router's ``alias=inner=version``
    is its candidate ``alias``)."""
    return answered_by.partition("=")[0]


def step_tiers(
    runs: Sequence[RunMeasure],
    evaluate: EvaluateSpec | None,
    references: References,
    routed: Mapping[str, tuple[str | None, Sequence[str]]] = {},  # noqa: B006 - read only
) -> tuple[StepTiers, ...]:
    """The tiers of each routed step: those declared in ``routed`` (every candidate shown,
    answered or not, in declared order) and any other step whose rows name who answered."""
    seen = [step for run in runs for step in run.answered_by]
    steps = [*routed, *(s for s in dict.fromkeys(seen) if s not in routed)]
    out = []
    for step in steps:
        model, declared = routed.get(step, (None, ()))
        by_tier: dict[str, list[RunMeasure]] = {name: [] for name in declared}
        for run in runs:
            tier = tier_of(run, step)
            if tier is not None:
                by_tier.setdefault(tier, []).append(run)
        names = [n for n in by_tier if n not in (PERSON, PARKED)]
        names += [n for n in (PERSON, PARKED) if by_tier.get(n)]
        answered = sum(len(group) for group in by_tier.values())
        tiers = []
        for name in names:
            group = by_tier[name]
            person = name == PERSON
            tiers.append(
                Tier(
                    name=name,
                    items=len(group),
                    share=len(group) / answered if answered else 0.0,
                    accuracy=measure_accuracy(evaluate, group, references),
                    versions=tuple(sorted({r.answered_by[step] for r in group})),
                    escalated=sum(
                        candidate(r.answered_by[step]) == name for r in by_tier.get(PERSON, ())
                    ),
                    before_review=(
                        measure_accuracy(
                            evaluate, [as_agents_left_it(r) for r in group], references
                        )
                        if person
                        else None
                    ),
                )
            )
        out.append(StepTiers(step, model, answered, tuple(tiers)))
    return tuple(out)
