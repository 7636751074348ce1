"""Reading the run store back: runs, steps, reviews, batches and feedback labels."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import Any

from sqlalchemy import and_, exists, func, or_, select

from relayflow.store import schema
from relayflow.store.records import (
    BadRecordRecord,
    BatchRecord,
    BudgetAlertRecord,
    ReviewRecord,
    RunRecord,
    SpendRecord,
    StepRecord,
)
from relayflow.store.statements import loads


class StoreReads(abc.ABC):
    """The queries of the store. ``_select`` runs one after everything written is visible."""

    @abc.abstractmethod
    def _select(self, query: Any) -> list[Any]: ...

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._select(select(schema.runs).where(schema.runs.c.run_id == run_id))
        return _run(rows[0]) if rows else None

    def find_runs(self, prefix: str) -> list[RunRecord]:
        t = schema.runs
        return [_run(r) for r in self._select(select(t).where(t.c.run_id.startswith(prefix)))]

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        batch_id: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        t = schema.runs
        q = select(t).order_by(t.c.started.desc()).limit(limit)
        if workflow:
            q = q.where(t.c.workflow == workflow)
        if status:
            q = q.where(t.c.status == status)
        if batch_id:
            q = q.where(t.c.batch_id == batch_id)
        return [_run(r) for r in self._select(q)]

    def steps(self, run_id: str) -> list[StepRecord]:
        t = schema.steps
        rows = self._select(select(t).where(t.c.run_id == run_id).order_by(t.c.started))
        return [_step(r) for r in rows]

    def batch_runs(self, batch_id: str) -> Iterator[tuple[str, str, str]]:
        """``(item_key, run_id, status)`` of every run of a batch."""
        t = schema.runs
        q = select(t.c.item_key, t.c.run_id, t.c.status).where(t.c.batch_id == batch_id)
        for row in self._select(q):
            yield row[0], row[1], row[2]

    def get_batch(self, batch_id: str) -> BatchRecord | None:
        t = schema.batches
        rows = self._select(select(t).where(t.c.batch_id == batch_id))
        return BatchRecord(**rows[0]._mapping) if rows else None

    def list_batches(
        self, *, workflow: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[BatchRecord]:
        """The latest batches, newest first."""
        t = schema.batches
        q = select(t).order_by(t.c.created.desc()).limit(limit)
        if workflow:
            q = q.where(t.c.workflow == workflow)
        if status:
            q = q.where(t.c.status == status)
        return [BatchRecord(**r._mapping) for r in self._select(q)]

    def batch_counts(self, batch_ids: list[str]) -> dict[str, dict[str, int]]:
        """Per batch: how many of its runs are in each status, and ``bad``: how many of its
        records are bad still (not run since, in their place)."""
        counts: dict[str, dict[str, int]] = {b: {} for b in batch_ids}
        if not batch_ids:
            return counts
        r, b = schema.runs, schema.bad_records
        q = (
            select(r.c.batch_id, r.c.status, func.count())
            .where(r.c.batch_id.in_(batch_ids))
            .group_by(r.c.batch_id, r.c.status)
        )
        for batch_id, status, n in self._select(q):
            counts[batch_id][status] = n
        q = (
            select(b.c.batch_id, func.count())
            .where(b.c.batch_id.in_(batch_ids), _still_bad())
            .group_by(b.c.batch_id)
        )
        for batch_id, n in self._select(q):
            counts[batch_id]["bad"] = n
        return counts

    def bad_records(self, batch_id: str, *, limit: int | None = None) -> list[BadRecordRecord]:
        """The batch's records that could not become runs, in the order they were met; one
        that was fixed and has run since (a run holds its place) is not listed."""
        b = schema.bad_records
        q = select(b).where(b.c.batch_id == batch_id, _still_bad()).order_by(b.c.created)
        if limit is not None:
            q = q.limit(limit)
        return [BadRecordRecord(**r._mapping) for r in self._select(q)]

    def reviews(self, *, status: str | None = "pending", limit: int = 100) -> list[ReviewRecord]:
        t = schema.reviews
        q = select(t).order_by(t.c.created).limit(limit)
        if status:
            q = q.where(t.c.status == status)
        return [_review(r) for r in self._select(q)]

    def get_review(self, review_id: str) -> ReviewRecord | None:
        t = schema.reviews
        rows = self._select(select(t).where(t.c.review_id == review_id))
        return _review(rows[0]) if rows else None

    def feedback(self, workflow: str) -> list[dict[str, Any]]:
        t = schema.feedback
        rows = self._select(select(t).where(t.c.workflow == workflow).order_by(t.c.created))
        return [{**r._mapping, "label": loads(r.label)} for r in rows]

    def spend(
        self, *, since: float | None = None, workflow: str | None = None
    ) -> list[SpendRecord]:
        """Every step that called a model or cost something, with its run's workflow and the
        model it used (from its versions), oldest first; ``since`` is when the step started."""
        s, r = schema.steps, schema.runs
        q = (
            select(
                r.c.workflow,
                s.c.run_id,
                s.c.step,
                s.c.versions,
                s.c.started,
                s.c.input_tokens,
                s.c.output_tokens,
                s.c.model_calls,
                s.c.cost,
            )
            .join(r, r.c.run_id == s.c.run_id)
            .where(or_(s.c.model_calls > 0, s.c.cost > 0))
            .order_by(s.c.started)
        )
        if since is not None:
            q = q.where(s.c.started >= since)
        if workflow:
            q = q.where(r.c.workflow == workflow)
        return [
            SpendRecord(
                workflow=row.workflow,
                run_id=row.run_id,
                step=row.step,
                model=loads(row.versions).get("model"),
                started=row.started,
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                model_calls=row.model_calls,
                cost=row.cost,
            )
            for row in self._select(q)
        ]

    def budget_alerts(self, *, since: float | None = None) -> list[BudgetAlertRecord]:
        """Budget alerts (govern/budget.py), the latest first."""
        t = schema.budget_alerts
        q = select(t).order_by(t.c.last.desc())
        if since is not None:
            q = q.where(t.c.last >= since)
        return [BudgetAlertRecord(**r._mapping) for r in self._select(q)]


def _still_bad() -> Any:
    """A bad record whose place no run holds: a run's key is the record's position (``3``,
    ``file#3``), or the position, ``:`` and the record's id (``3:abc``)."""
    r, b = schema.runs, schema.bad_records
    prefix = func.substr(r.c.item_key, 1, func.length(b.c.item_key) + 1)
    taken = and_(
        r.c.batch_id == b.c.batch_id,
        or_(r.c.item_key == b.c.item_key, prefix == b.c.item_key + ":"),
    )
    return ~exists().where(taken)


def _run(r: Any) -> RunRecord:
    return RunRecord(
        run_id=r.run_id,
        workflow=r.workflow,
        workflow_version=r.workflow_version,
        batch_id=r.batch_id,
        item_key=r.item_key,
        status=r.status,
        input=loads(r.input),
        output=loads(r.output),
        error=r.error,
        waiting_step=r.waiting_step,
        started=r.started,
        ended=r.ended,
    )


def _step(r: Any) -> StepRecord:
    return StepRecord(
        run_id=r.run_id,
        step=r.step,
        agent_type=r.agent_type,
        status=r.status,
        attempt=r.attempt,
        actor=r.actor,
        output=loads(r.output),
        confidence=r.confidence,
        input_tokens=r.input_tokens,
        output_tokens=r.output_tokens,
        model_calls=r.model_calls,
        model_seconds=r.model_seconds,
        cost=r.cost,
        versions=loads(r.versions),
        flags=tuple(loads(r.flags)),
        error=r.error,
        started=r.started,
        ended=r.ended,
    )


def _review(r: Any) -> ReviewRecord:
    return ReviewRecord(
        review_id=r.review_id,
        run_id=r.run_id,
        step=r.step,
        workflow=r.workflow,
        status=r.status,
        reason=r.reason,
        input=loads(r.input),
        output=loads(r.output),
        confidence=r.confidence,
        decision=r.decision,
        decided_output=loads(r.decided_output),
        reviewer=r.reviewer,
        created=r.created,
        decided=r.decided,
    )
