"""Recorded outcomes read back from the run store: the finished outputs of a step, the labels
people gave (feedback, review decisions), the routed steps' answers and the runs of an A/B
variant. Learning (learn/data.py), routing (providers/outcomes.py) and live A/B figures
(ab/live.py) judge with them; this module only reads. Payloads come back decoded."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from relayflow.errors import StoreError
from relayflow.store import schema
from relayflow.store.statements import loads

__all__ = [
    "DecidedReview",
    "Label",
    "StepOutput",
    "VariantRun",
    "decided_review",
    "decided_reviews",
    "finished_count",
    "finished_outputs",
    "hand_labels",
    "labels_of_runs",
    "routed_answers",
    "variant_runs",
]

#: the ``IN (…)`` lists of a query are sent in chunks of this many ids
_CHUNK = 500


class StepOutput(NamedTuple):
    """A finished step of one run: its output (decoded), when it ended, the run's item key;
    ``versions`` are the step's versions (``answered_by`` of a routed step among them)."""

    run_id: str
    step: str
    output: Any
    ended: float | None
    item_key: str | None
    versions: Any = None


class Label(NamedTuple):
    """A feedback label (decoded); ``step`` None labels the whole run."""

    run_id: str | None
    step: str | None
    label: Any
    source: str
    created: float


class DecidedReview(NamedTuple):
    """What a reviewer was shown (``output``), what they decided and the record they kept."""

    run_id: str
    output: Any
    decided_output: Any
    decision: str


class VariantRun(NamedTuple):
    """One recorded run of a workflow (an A/B variant's ``workflow@variant``) and the model cost
    of its steps."""

    run_id: str
    status: str
    started: float
    ended: float | None
    output: Any
    cost: float


def finished_outputs(
    engine: Engine,
    *,
    workflow: str,
    step: str,
    runs: Sequence[str] | None = None,
    since: float | None = None,
    limit: int = 5000,
) -> list[StepOutput]:
    """The newest ``limit`` finished outputs of ``step`` in runs of ``workflow`` (only ``runs``,
    or those that ended since ``since``, when given), newest first within each chunk of runs."""
    s, r = schema.steps, schema.runs
    query = (
        select(s.c.run_id, s.c.output, s.c.ended, r.c.item_key)
        .join(r, r.c.run_id == s.c.run_id)
        .where(r.c.workflow == workflow, s.c.step == step, s.c.status == "finished")
        .order_by(s.c.ended.desc())
        .limit(limit)
    )
    if since is not None:
        query = query.where(s.c.ended >= since)
    found: list[StepOutput] = []
    for ids in _chunks(runs) if runs is not None else [None]:
        chunk = query if ids is None else query.where(s.c.run_id.in_(ids))
        for run_id, output, ended, item_key in _read(engine, chunk, "the store"):
            decoded = json.loads(output) if output else {}
            found.append(StepOutput(run_id, step, decoded, ended, item_key))
    return found


def labels_of_runs(engine: Engine, workflow: str, run_ids: Sequence[str]) -> list[Label]:
    """Every feedback label of ``run_ids`` in ``workflow``, oldest first within each chunk."""
    f = schema.feedback
    labels: list[Label] = []
    for ids in _chunks(run_ids):
        query = (
            select(f.c.run_id, f.c.step, f.c.label, f.c.source, f.c.created)
            .where(f.c.workflow == workflow, f.c.run_id.in_(ids))
            .order_by(f.c.created)
        )
        for run_id, step, text, source, created in _read(engine, query, "the store"):
            labels.append(Label(run_id, step, json.loads(text), source, created))
    return labels


def label_count(engine: Engine, workflow: str, since: float = 0.0) -> int:
    """How many labels (review decisions and labels added by hand) ``workflow`` got after
    ``since`` (a timestamp): what a ``trigger: new_labels`` retrain step counts."""
    f = schema.feedback
    query = select(func.count()).where(f.c.workflow == workflow, f.c.created > since)
    return int(_read(engine, query, "the store's labels")[0][0])


def finished_count(engine: Engine, step: str, run_ids: Sequence[str]) -> int:
    """How many of ``run_ids`` the store shows with ``step`` finished."""
    s = schema.steps
    seen = 0
    for ids in _chunks(run_ids):
        query = select(func.count()).where(
            s.c.step == step, s.c.status == "finished", s.c.run_id.in_(ids)
        )
        seen += int(_read(engine, query, "the store")[0][0])
    return seen


def decided_review(engine: Engine, run_id: str, step: str) -> tuple[Any, Any] | None:
    """``(record shown, record decided)`` of the decided review of ``step`` in ``run_id``."""
    t = schema.reviews
    query = select(t.c.output, t.c.decided_output).where(t.c.review_id == f"{run_id}:{step}")
    rows = _read(engine, query, "the store")
    if not rows or rows[0].decided_output is None:
        return None
    return json.loads(rows[0].output), json.loads(rows[0].decided_output)


def decided_reviews(engine: Engine, workflow: str, window: int) -> list[DecidedReview]:
    """The newest ``window`` decided reviews of ``workflow``, newest first."""
    r = schema.reviews
    query = (
        select(r.c.run_id, r.c.output, r.c.decided_output, r.c.decision)
        .where(r.c.workflow == workflow, r.c.decision.is_not(None))
        .order_by(r.c.decided.desc())
        .limit(window)
    )
    return [
        DecidedReview(row.run_id, _json(row.output), _json(row.decided_output), row.decision)
        for row in _read(engine, query, "review decisions")
    ]


def hand_labels(engine: Engine, workflow: str, window: int) -> list[Label]:
    """The newest ``window`` labels of runs of ``workflow`` that were not a reviewer's
    decision (added by hand), newest first."""
    f = schema.feedback
    query = (
        select(f.c.run_id, f.c.step, f.c.label, f.c.source, f.c.created)
        .where(f.c.workflow == workflow, f.c.source != "review", f.c.run_id.is_not(None))
        .order_by(f.c.created.desc())
        .limit(window)
    )
    return [
        Label(row.run_id, row.step, _json(row.label), row.source, row.created)
        for row in _read(engine, query, "feedback labels")
    ]


def routed_answers(
    engine: Engine, run_ids: Sequence[str], steps: Sequence[str]
) -> Iterator[StepOutput]:
    """The finished ``steps`` of ``run_ids`` with their outputs and versions."""
    s = schema.steps
    for ids in _chunks(sorted(run_ids)):
        query = select(s.c.run_id, s.c.step, s.c.output, s.c.versions).where(
            s.c.run_id.in_(ids), s.c.step.in_(list(steps)), s.c.status == "finished"
        )
        for row in _read(engine, query, "routed steps"):
            yield StepOutput(
                row.run_id, row.step, _json(row.output), None, None, _json(row.versions)
            )


def variant_runs(engine: Engine, workflow: str, limit: int) -> list[VariantRun]:
    """The latest ``limit`` runs recorded as ``workflow``, with the cost of their steps, as the
    database holds them now (what a writer has not committed yet is not seen)."""
    runs, steps = schema.runs, schema.steps
    latest = (
        select(runs.c.run_id, runs.c.status, runs.c.started, runs.c.ended, runs.c.output)
        .where(runs.c.workflow == workflow)
        .order_by(runs.c.started.desc())
        .limit(limit)
        .subquery()
    )
    query = (
        select(latest, func.coalesce(func.sum(steps.c.cost), 0.0))
        .select_from(latest.outerjoin(steps, steps.c.run_id == latest.c.run_id))
        .group_by(*latest.c)
    )
    return [
        VariantRun(row[0], row[1], row[2], row[3], loads(row[4]), float(row[5]))
        for row in _read(engine, query, "the store")
    ]


def _read(engine: Engine, query: Any, what: str) -> list[Any]:
    try:
        with engine.connect() as conn:
            return list(conn.execute(query))
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read {what} at {engine.url}: {exc}") from exc


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def _chunks(ids: Sequence[str] | None) -> Iterator[list[str]]:
    items = list(ids or [])
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
