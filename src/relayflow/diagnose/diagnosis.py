"""A workflow's diagnosis: the measured steps, each objective's leading step, the bottleneck."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relayflow.diagnose.bottleneck import Bottleneck, find_bottleneck, leader
from relayflow.diagnose.knobs import OBJECTIVES, Objective
from relayflow.diagnose.measure import Measured, measure

if TYPE_CHECKING:
    from relayflow.schema.workflow import Workflow
    from relayflow.store.protocol import RunStore
    from relayflow.store.records import RunRecord


@dataclass(frozen=True, slots=True)
class Diagnosis:
    workflow: str
    file: str
    #: which runs, in words (the last bench, a batch, the last N runs) and the store
    source: str
    store: str
    measured: Measured
    #: per objective, the step with the largest share of it (None: no step has any)
    leaders: dict[Objective, str | None]
    bottleneck: Bottleneck | None


def diagnose(
    workflow: Workflow,
    store: RunStore,
    runs: Sequence[RunRecord],
    *,
    source: str,
    location: str,
    objective: Objective | None = None,
) -> Diagnosis:
    """Measure ``runs`` of ``workflow`` and name the bottleneck (for ``objective``, or by the
    rule of diagnose/bottleneck.py)."""
    from relayflow.errors import ConfigError
    from relayflow.learn.references import References

    notes: list[str] = []
    references: References | None = None
    if workflow.spec.evaluate is not None:
        try:
            references = References(workflow.spec.evaluate, workflow.base_dir)
        except ConfigError as exc:
            notes.append(f"wrong answers are not judged: {exc}")
    else:
        notes.append(
            "the workflow has no evaluate: section, so only reviewers' corrections count as "
            "wrong answers (add a golden set to judge every run)"
        )
    measured = measure(workflow, store, runs, references)
    if notes:
        measured = Measured(measured.steps, measured.totals, (*notes, *measured.notes))
    leaders: dict[Objective, str | None] = {}
    for o in OBJECTIVES:
        top = leader(measured, o)
        leaders[o] = top.step if top is not None else None
    return Diagnosis(
        workflow=workflow.name,
        file=str(workflow.file),
        source=source,
        store=location,
        measured=measured,
        leaders=leaders,
        bottleneck=find_bottleneck(workflow, measured, objective),
    )
