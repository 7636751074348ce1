"""The runs repository: runs, their steps, batches and bad records, and the runs a server owns."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select

from relayflow.store import schema
from relayflow.store.reads import StoreReads
from relayflow.store.records import (
    BadRecordRecord,
    BatchRecord,
    OwnedRun,
    RunRecord,
    StepRecord,
    WorkflowHistory,
)
from relayflow.store.statements import loads

#: ids per ``IN (…)`` list: well under every backend's limit on bound parameters
CHUNK = 500


class RunQueries(StoreReads):
    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._select(select(schema.runs).where(schema.runs.c.run_id == run_id))
        return run_record(rows[0]) if rows else None

    def find_runs(self, prefix: str) -> list[RunRecord]:
        t = schema.runs
        return [run_record(r) for r in self._select(select(t).where(t.c.run_id.startswith(prefix)))]

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        workflows: Collection[str] | None = None,
        status: str | None = None,
        batch_id: str | None = None,
        since: float | None = None,
        limit: int | None = 50,
    ) -> list[RunRecord]:
        """The latest runs, newest first, in one query. ``workflows`` limits them to those
        workflows (empty: none); ``since`` to runs started then or later; ``limit`` None:
        every run that matches."""
        t = schema.runs
        q = select(t).order_by(t.c.started.desc())
        if limit is not None:
            q = q.limit(limit)
        if workflow:
            q = q.where(t.c.workflow == workflow)
        if workflows is not None:
            q = q.where(t.c.workflow.in_(list(workflows)))
        if status:
            q = q.where(t.c.status == status)
        if batch_id:
            q = q.where(t.c.batch_id == batch_id)
        if since is not None:
            q = q.where(t.c.started >= since)
        return [run_record(r) for r in self._select(q)]

    def steps(self, run_id: str) -> list[StepRecord]:
        t = schema.steps
        rows = self._select(select(t).where(t.c.run_id == run_id).order_by(t.c.started))
        return [step_record(r) for r in rows]

    def steps_of(self, run_ids: Sequence[str]) -> dict[str, list[StepRecord]]:
        """The steps of each of ``run_ids`` (every id is a key), each run's in the order
        ``steps`` gives: one query per few hundred runs, not one per run."""
        out: dict[str, list[StepRecord]] = {run_id: [] for run_id in run_ids}
        t = schema.steps
        ids = list(out)
        for i in range(0, len(ids), CHUNK):
            q = select(t).where(t.c.run_id.in_(ids[i : i + CHUNK])).order_by(t.c.started)
            for row in self._select(q):
                out[row.run_id].append(step_record(row))
        return out

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

    def workflow_history(self, workflow: str, *, limit: int = 1000) -> WorkflowHistory:
        """The workflow's runs by status, and its ``limit`` latest runs with their steps and
        escalations (what ``/v1/workflows/{name}/metrics`` figures from)."""
        runs_t, steps_t, reviews_t = schema.runs, schema.steps, schema.reviews
        by_status = {
            status: n
            for status, n in self._select(
                select(runs_t.c.status, func.count())
                .where(runs_t.c.workflow == workflow)
                .group_by(runs_t.c.status)
            )
        }
        recent = (
            select(runs_t.c.run_id)
            .where(runs_t.c.workflow == workflow)
            .order_by(runs_t.c.started.desc())
            .limit(limit)
            .subquery()
        )
        in_recent = select(recent.c.run_id)
        runs = self._select(select(runs_t).where(runs_t.c.run_id.in_(in_recent)))
        steps: dict[str, list[StepRecord]] = {}
        q = select(steps_t).where(steps_t.c.run_id.in_(in_recent)).order_by(steps_t.c.started)
        for row in self._select(q):
            steps.setdefault(row.run_id, []).append(step_record(row))
        escalations = Counter(
            row[0]
            for row in self._select(
                select(reviews_t.c.run_id).where(reviews_t.c.run_id.in_(in_recent))
            )
        )
        return WorkflowHistory(
            by_status=by_status,
            runs=tuple(run_record(r) for r in runs),
            steps={run_id: tuple(s) for run_id, s in steps.items()},
            escalations=dict(escalations),
        )

    # ---- the runs a server owns -----------------------------------------------------------------

    def own_run(self, run_id: str, workflow: str, version: str, token_id: str | None) -> None:
        """Make a server responsible for ``run_id`` under ``token_id`` (replacing whoever was)."""
        t = schema.server_runs
        self._execute(
            delete(t).where(t.c.run_id == run_id),
            t.insert().values(
                run_id=run_id,
                workflow=workflow,
                workflow_version=version,
                token_id=token_id,
                created=time.time(),
            ),
        )

    def owned_runs(self, statuses: Collection[str]) -> list[OwnedRun]:
        """The runs a server owns that are in one of ``statuses``, oldest first."""
        runs, owners = schema.runs, schema.server_runs
        q = (
            select(runs, owners.c.token_id.label("owner_token_id"))
            .join(owners, owners.c.run_id == runs.c.run_id)
            .where(runs.c.status.in_(list(statuses)))
            .order_by(runs.c.started)
        )
        return [OwnedRun(run_record(r), r.owner_token_id) for r in self._select(q)]


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


def run_record(r: Any) -> RunRecord:
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


def step_record(r: Any) -> StepRecord:
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
