"""The run store: consumes the event stream and makes each finished step durable, with group
commit; reads runs, steps and reviews back for resume, the CLI and the service.

Writes go through the driver's own cursor with statements compiled once by SQLAlchemy for the
store's dialect (SQLite or PostgreSQL): the hot path stays a few microseconds per step, and every
step finished during one turn of the event loop shares one commit.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, create_engine, event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from relayflow.engine import events as ev
from relayflow.errors import StoreError
from relayflow.store import schema
from relayflow.store.journal import Journal, discard, orphaned_logs
from relayflow.store.records import BatchRecord, ReviewRecord, RunRecord, StepRecord


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def store_url(url_or_path: str) -> str:
    """Accept a SQLAlchemy URL or a bare file path (meaning SQLite)."""
    return url_or_path if "://" in url_or_path else f"sqlite:///{url_or_path}"


class _Statement:
    """A statement compiled once for the dialect, executed with the driver's executemany."""

    def __init__(self, name: str, stmt: Any, engine: Engine) -> None:
        self.name = name
        compiled = stmt.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        self.positional = compiled.positiontup is not None
        self.keys: list[str] = list(compiled.positiontup or [])
        # literal values written into the statement itself (``status == 'pending'``) are
        # anonymous binds; their values come from the compiled statement, not the row
        self.fixed = {
            name: bind.effective_value
            for name, bind in compiled.binds.items()
            if not bind.required
            and not bind.callable
            and bind.value is not None
            or name.startswith("param_")
        }

    def params(self, row: Mapping[str, Any]) -> Any:
        if self.positional:
            if self.fixed:
                return tuple(self.fixed[k] if k in self.fixed else row[k] for k in self.keys)
            return tuple([row[k] for k in self.keys])
        return {**self.fixed, **row} if self.fixed else row


class SqlStore:
    """Store backed by SQLAlchemy: a file path or URL (``sqlite:///runs.db``, ``postgresql+psycopg://…``)."""

    #: rows logged but not yet in the database before a checkpoint is forced
    CHECKPOINT_ROWS = 4000
    #: seconds between a write and the checkpoint that puts it in the database for other readers
    CHECKPOINT_DELAY = 0.25

    def __init__(self, url: str, *, journal: bool | None = None) -> None:
        self.url = store_url(url)
        try:
            self.engine = self._create_engine(self.url)
            schema.metadata.create_all(self.engine)
            self._raw: Any = self.engine.raw_connection()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the store at {self.url}: {exc}") from exc
        self._buffer: list[tuple[_Statement, dict[str, Any]]] = []
        self._unapplied: list[tuple[_Statement, dict[str, Any]]] = []
        self._waiter: asyncio.Future[None] | None = None
        self._lazy: asyncio.TimerHandle | None = None
        self._lazy_error: StoreError | None = None
        self._compile_statements()
        db_file = self._sqlite_file()
        use_journal = db_file is not None if journal is None else journal
        self._journal: Journal | None = None
        if db_file is not None:
            self._recover(db_file)
            if use_journal:
                self._journal = Journal(db_file)

    def _sqlite_file(self) -> Path | None:
        database = self.engine.url.database
        if self.engine.dialect.name != "sqlite" or not database or database == ":memory:":
            return None
        return Path(database)

    def _recover(self, db_file: Path) -> None:
        """Apply the logs that writers which died left behind, then remove them."""
        for path, fd, entries in orphaned_logs(db_file):
            self._apply([(self._by_name[name], row) for name, row in entries])
            discard(path, fd)

    @staticmethod
    def _create_engine(url: str) -> Engine:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cursor = dbapi_conn.cursor()
                # WAL + synchronous=NORMAL: a commit survives kill -9 of the process (the WAL is
                # in the OS's hands) without an fsync per commit.
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

            return engine
        return create_engine(url, pool_pre_ping=True)

    def _insert(self, table: Any) -> Any:
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _compile_statements(self) -> None:
        e = self.engine
        runs, steps, reviews = schema.runs, schema.steps, schema.reviews
        ins = self._insert(runs)
        self._run_started = _Statement(
            "run_started",
            ins.on_conflict_do_update(
                index_elements=[runs.c.run_id],
                set_={
                    "status": ins.excluded.status,
                    "updated": ins.excluded.updated,
                    "error": None,
                    "waiting_step": None,
                },
            ),
            e,
        )
        ins = self._insert(steps)
        self._step_upsert = _Statement(
            "step_upsert",
            ins.on_conflict_do_update(
                index_elements=[steps.c.run_id, steps.c.step],
                set_={c.name: ins.excluded[c.name] for c in steps.c if not c.primary_key},
            ),
            e,
        )
        self._run_update = _Statement(
            "run_update",
            update(runs)
            .where(runs.c.run_id == bindparam("b_run_id"))
            .values(
                status=bindparam("b_status"),
                output=bindparam("b_output"),
                error=bindparam("b_error"),
                ended=bindparam("b_ended"),
                waiting_step=bindparam("b_waiting"),
                updated=bindparam("b_updated"),
            ),
            e,
        )
        ins = self._insert(reviews)
        self._review_insert = _Statement(
            "review_insert", ins.on_conflict_do_nothing(index_elements=[reviews.c.review_id]), e
        )
        self._review_decide = _Statement(
            "review_decide",
            update(reviews)
            .where(reviews.c.run_id == bindparam("b_run_id"))
            .where(reviews.c.step == bindparam("b_step"))
            .where(reviews.c.status == "pending")
            .values(
                status=bindparam("b_status"),
                decision=bindparam("b_decision"),
                decided_output=bindparam("b_output"),
                reviewer=bindparam("b_reviewer"),
                decided=bindparam("b_ts"),
            ),
            e,
        )
        ins = self._insert(schema.feedback)
        self._feedback_insert = _Statement(
            "feedback_insert",
            ins.on_conflict_do_nothing(index_elements=[schema.feedback.c.feedback_id]),
            e,
        )
        ins = self._insert(schema.batches)
        self._batch_upsert = _Statement(
            "batch_upsert",
            ins.on_conflict_do_update(
                index_elements=[schema.batches.c.batch_id],
                set_={"status": ins.excluded.status, "updated": ins.excluded.updated},
            ),
            e,
        )
        self._batch_update = _Statement(
            "batch_update",
            update(schema.batches)
            .where(schema.batches.c.batch_id == bindparam("b_batch_id"))
            .values(
                status=bindparam("b_status"), runs=bindparam("b_runs"), updated=bindparam("b_ts")
            ),
            e,
        )
        self._by_name = {
            s.name: s
            for s in (
                self._run_started,
                self._step_upsert,
                self._run_update,
                self._review_insert,
                self._review_decide,
                self._feedback_insert,
                self._batch_upsert,
                self._batch_update,
            )
        }

    # ---- the event consumer -------------------------------------------------------------

    def handle(self, event: ev.Event) -> asyncio.Future[None] | None:
        """Buffer the event's writes; return a future for events that must be durable."""
        kind = type(event)
        if kind is ev.StepStarted:
            return None
        if kind is ev.StepFinished:
            assert isinstance(event, ev.StepFinished)
            self._buffer.append((self._step_upsert, self._step_row(event)))
            return self._durable()
        if kind is ev.RunStarted:
            assert isinstance(event, ev.RunStarted)
            self._buffer.append(
                (
                    self._run_started,
                    {
                        "run_id": event.run_id,
                        "workflow": event.workflow,
                        "workflow_version": event.workflow_version,
                        "batch_id": event.batch_id,
                        "item_key": event.item_key,
                        "status": "running",
                        "input": _dumps(event.input),
                        "output": None,
                        "error": None,
                        "waiting_step": None,
                        "started": event.ts,
                        "ended": None,
                        "updated": event.ts,
                    },
                )
            )
            return None
        if kind is ev.RunFinished:
            assert isinstance(event, ev.RunFinished)
            self._buffer.append(
                (
                    self._run_update,
                    {
                        "b_run_id": event.run_id,
                        "b_status": event.status,
                        "b_output": None if event.output is None else _dumps(event.output),
                        "b_error": event.error,
                        "b_ended": event.ts,
                        "b_waiting": None,
                        "b_updated": event.ts,
                    },
                )
            )
            # No barrier: a run whose steps are all durable is finished again, without running
            # anything, if the process dies before this row lands. Committed soon or with the
            # next step.
            self._flush_later()
            return None
        return self._handle_rare(event)

    def _handle_rare(self, event: ev.Event) -> asyncio.Future[None] | None:
        if isinstance(event, ev.StepFailed):
            self._buffer.append(
                (
                    self._step_upsert,
                    self._plain_step_row(
                        event.run_id, event.step, "failed", event.attempt, event.error, event.ts
                    ),
                )
            )
            return None if event.will_retry else self._durable()
        if isinstance(event, ev.StepCancelled):
            self._buffer.append(
                (
                    self._step_upsert,
                    self._plain_step_row(
                        event.run_id, event.step, "cancelled", 0, "cancelled", event.ts
                    ),
                )
            )
            self._flush_later()
            return None
        if isinstance(event, ev.StepEscalated):
            self._write_escalation(event)
            return self._durable()
        if isinstance(event, ev.ReviewDecided):
            self._write_decision(event)
            return self._durable()
        if isinstance(event, ev.BatchStarted):
            self._buffer.append(
                (
                    self._batch_upsert,
                    {
                        "batch_id": event.batch_id,
                        "workflow": event.workflow,
                        "workflow_file": event.workflow_file,
                        "inputs": event.inputs,
                        "concurrency": event.concurrency,
                        "status": "running",
                        "runs": 0,
                        "created": event.ts,
                        "updated": event.ts,
                    },
                )
            )
            return self._durable()
        if isinstance(event, ev.BatchFinished):
            self._buffer.append(
                (
                    self._batch_update,
                    {
                        "b_batch_id": event.batch_id,
                        "b_status": event.status,
                        "b_runs": event.runs,
                        "b_ts": event.ts,
                    },
                )
            )
            return self._durable()
        return None

    @staticmethod
    def _step_row(e: ev.StepFinished) -> dict[str, Any]:
        u = e.usage
        return {
            "run_id": e.run_id,
            "step": e.step,
            "agent_type": e.agent_type,
            "status": "finished",
            "attempt": e.attempt,
            "actor": e.actor,
            "output": _dumps(e.output),
            "confidence": e.confidence,
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "model_calls": u.model_calls,
            "model_seconds": u.model_seconds,
            "cost": u.cost,
            "versions": _dumps(e.versions),
            "flags": _dumps(e.flags),
            "error": None,
            "started": e.started,
            "ended": e.ended,
        }

    @staticmethod
    def _plain_step_row(
        run_id: str, step: str, status: str, attempt: int, error: str, ts: float
    ) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "step": step,
            "agent_type": "",
            "status": status,
            "attempt": attempt,
            "actor": "agent",
            "output": None,
            "confidence": None,
            "input_tokens": 0,
            "output_tokens": 0,
            "model_calls": 0,
            "model_seconds": 0.0,
            "cost": 0.0,
            "versions": "{}",
            "flags": "[]",
            "error": error,
            "started": None,
            "ended": ts,
        }

    def _write_escalation(self, e: ev.StepEscalated) -> None:
        u = e.usage
        self._buffer.append(
            (
                self._step_upsert,
                {
                    "run_id": e.run_id,
                    "step": e.step,
                    "agent_type": e.agent_type,
                    "status": "escalated",
                    "attempt": 1,
                    "actor": "agent",
                    "output": _dumps(e.output),
                    "confidence": e.confidence,
                    "input_tokens": u.input_tokens,
                    "output_tokens": u.output_tokens,
                    "model_calls": u.model_calls,
                    "model_seconds": u.model_seconds,
                    "cost": u.cost,
                    "versions": _dumps(e.versions),
                    "flags": "[]",
                    "error": None,
                    "started": e.ts,
                    "ended": None,
                },
            )
        )
        self._buffer.append(
            (
                self._review_insert,
                {
                    "review_id": f"{e.run_id}:{e.step}",
                    "run_id": e.run_id,
                    "step": e.step,
                    "workflow": e.workflow,
                    "status": "pending",
                    "reason": e.reason,
                    "input": _dumps(e.input),
                    "output": _dumps(e.output),
                    "confidence": e.confidence,
                    "decision": None,
                    "decided_output": None,
                    "reviewer": None,
                    "created": e.ts,
                    "decided": None,
                },
            )
        )
        self._buffer.append(
            (
                self._run_update,
                {
                    "b_run_id": e.run_id,
                    "b_status": "waiting_review",
                    "b_output": None,
                    "b_error": None,
                    "b_ended": None,
                    "b_waiting": e.step,
                    "b_updated": e.ts,
                },
            )
        )

    def _write_decision(self, e: ev.ReviewDecided) -> None:
        self._buffer.append(
            (
                self._review_decide,
                {
                    "b_run_id": e.run_id,
                    "b_step": e.step,
                    "b_status": "approved" if e.decision == "approve" else "corrected",
                    "b_decision": e.decision,
                    "b_output": _dumps(e.output),
                    "b_reviewer": e.reviewer,
                    "b_ts": e.ts,
                },
            )
        )
        self._buffer.append(
            (
                self._feedback_insert,
                {
                    "feedback_id": f"review:{e.run_id}:{e.step}"[:80],
                    "workflow": e.workflow,
                    "run_id": e.run_id,
                    "step": e.step,
                    "item_key": e.item_key,
                    "label": _dumps(e.output),
                    "source": "review",
                    "created": e.ts,
                },
            )
        )

    def _durable(self) -> asyncio.Future[None] | None:
        """Make everything buffered durable before the caller goes on.

        With a journal the write happens now and nothing needs awaiting; without one (a
        PostgreSQL store) the caller awaits a future resolved by the next commit, and one
        commit serves every event buffered in the same turn of the event loop.
        """
        if self._journal is not None:
            self._log_buffer()
            return None
        if self._waiter is None:
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            loop.call_soon(self._flush_soon)
        return self._waiter

    def _log_buffer(self) -> None:
        assert self._journal is not None
        if self._buffer:
            buffer, self._buffer = self._buffer, []
            try:
                self._journal.append([(stmt.name, row) for stmt, row in buffer])
            except OSError as exc:
                self._buffer = buffer + self._buffer
                path = self._journal.path
                raise StoreError(f"cannot write the store's log {path}: {exc}") from exc
            self._unapplied.extend(buffer)
        if len(self._unapplied) >= self.CHECKPOINT_ROWS:
            self.flush()
        elif self._unapplied:
            self._flush_later(self.CHECKPOINT_DELAY)

    def _flush_later(self, delay: float = 0.05) -> None:
        """Commit within ``delay`` seconds, for writes nobody waits on."""
        if self._lazy is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._lazy = loop.call_later(delay, self._flush_lazily)

    def _flush_lazily(self) -> None:
        self._lazy = None
        try:
            self.flush()
        except StoreError as exc:  # raised again at the next durable write
            self._lazy_error = exc

    def _flush_soon(self) -> None:
        waiter, self._waiter = self._waiter, None
        try:
            if self._lazy_error is not None:
                error, self._lazy_error = self._lazy_error, None
                raise error
            self.flush()
        except StoreError as exc:
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
            return
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def flush(self) -> None:
        """Put everything written so far into the database, in order, in one transaction."""
        if self._journal is not None:
            if self._buffer:
                self._log_buffer()
            if not self._unapplied:
                return
            pending, self._unapplied = self._unapplied, []
            try:
                self._apply(pending)
            except StoreError:
                self._unapplied = pending + self._unapplied
                raise
            self._journal.clear()
            return
        if not self._buffer:
            return
        buffer, self._buffer = self._buffer, []
        try:
            self._apply(buffer)
        except StoreError:
            self._buffer = buffer + self._buffer
            raise

    def _apply(self, writes: list[tuple[_Statement, dict[str, Any]]]) -> None:
        try:
            cursor = self._raw.cursor()
            for stmt, rows in _grouped(writes):
                if len(rows) == 1:
                    cursor.execute(stmt.sql, stmt.params(rows[0]))
                else:
                    cursor.executemany(stmt.sql, [stmt.params(r) for r in rows])
            cursor.close()
            self._raw.commit()
        except Exception as exc:  # the driver's own errors: sqlite3, psycopg
            self._raw.rollback()
            raise StoreError(f"cannot write to the store at {self.url}: {exc}") from exc

    def close(self) -> None:
        if self._lazy is not None:
            self._lazy.cancel()
            self._lazy = None
        try:
            self.flush()
            if self._journal is not None:
                self._journal.close()
        finally:
            self._raw.close()
            self.engine.dispose()

    # ---- reads ---------------------------------------------------------------------------

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
        return [{**r._mapping, "label": _loads(r.label)} for r in rows]

    def add_feedback(
        self,
        workflow: str,
        label: Mapping[str, Any],
        *,
        run_id: str | None = None,
        step: str | None = None,
        item_key: str | None = None,
    ) -> None:
        self._buffer.append(
            (
                self._feedback_insert,
                {
                    "feedback_id": f"manual:{secrets.token_hex(8)}",
                    "workflow": workflow,
                    "run_id": run_id,
                    "step": step,
                    "item_key": item_key,
                    "label": _dumps(label),
                    "source": "manual",
                    "created": time.time(),
                },
            )
        )
        self.flush()

    def _select(self, query: Any) -> list[Any]:
        self.flush()
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(query))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the store at {self.url}: {exc}") from exc


def _grouped(
    buffer: list[tuple[_Statement, dict[str, Any]]],
) -> Iterator[tuple[_Statement, list[dict[str, Any]]]]:
    """Consecutive writes of the same statement, batched for executemany; order is kept."""
    current: _Statement | None = None
    rows: list[dict[str, Any]] = []
    for stmt, row in buffer:
        if stmt is not current and current is not None:
            yield current, rows
            rows = []
        current = stmt
        rows.append(row)
    if current is not None:
        yield current, rows


def _run(r: Any) -> RunRecord:
    return RunRecord(
        run_id=r.run_id,
        workflow=r.workflow,
        workflow_version=r.workflow_version,
        batch_id=r.batch_id,
        item_key=r.item_key,
        status=r.status,
        input=_loads(r.input),
        output=_loads(r.output),
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
        output=_loads(r.output),
        confidence=r.confidence,
        input_tokens=r.input_tokens,
        output_tokens=r.output_tokens,
        model_calls=r.model_calls,
        model_seconds=r.model_seconds,
        cost=r.cost,
        versions=_loads(r.versions),
        flags=tuple(_loads(r.flags)),
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
        input=_loads(r.input),
        output=_loads(r.output),
        confidence=r.confidence,
        decision=r.decision,
        decided_output=_loads(r.decided_output),
        reviewer=r.reviewer,
        created=r.created,
        decided=r.decided,
    )
