"""The run store: consumes the event stream and makes each finished step durable before the
steps after it start; reads runs, steps and reviews back for resume, the CLI and the service.

SQLite (the default): each durable write is one append to a per-process log (see journal.py),
applied to the database in large transactions. PostgreSQL: group commit — every event that
must be durable returns a future, and one commit per turn of the event loop serves them all.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from relayflow.core import events as ev
from relayflow.errors import StoreError
from relayflow.store.cache import StepCache
from relayflow.store.catalog import CatalogQueries
from relayflow.store.costs import CostQueries
from relayflow.store.database import open_engine, sqlite_file, store_url
from relayflow.store.database import reason as _reason
from relayflow.store.idempotency import IdempotencyQueries
from relayflow.store.journal import Journal, discard, orphaned_logs
from relayflow.store.migrations import ensure_schema
from relayflow.store.reviews import ReviewQueries
from relayflow.store.rows import Write, run_started_row, writes_for
from relayflow.store.runs import RunQueries
from relayflow.store.statements import Statement, Statements, dumps

__all__ = ["SqlStore", "store_url"]


class SqlStore(RunQueries, ReviewQueries, CostQueries, IdempotencyQueries, CatalogQueries):
    """A store at a path or URL (``runs.db``, ``sqlite:///runs.db``, ``postgresql+psycopg://…``):
    the ``ServerStore`` contract (protocol.py) on SQLite and PostgreSQL."""

    #: rows logged but not yet in the database before a checkpoint is forced
    CHECKPOINT_ROWS = 4000
    #: seconds between a write and the checkpoint that puts it in the database for other readers
    CHECKPOINT_DELAY = 0.25

    def __init__(self, url: str, *, journal: bool | None = None) -> None:
        self.url = store_url(url)
        self.engine = open_engine(self.url)
        try:
            ensure_schema(self.engine)
            self._raw: Any = self.engine.raw_connection()
        except (SQLAlchemyError, StoreError) as exc:
            self.engine.dispose()  # a refused store leaves no connection behind
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot open the store at {self.url}: {_reason(exc)}") from exc
        self.statements = Statements(self.engine)
        self._buffer: list[Write] = []
        self._unapplied: list[Write] = []
        self._waiter: asyncio.Future[None] | None = None
        self._lazy: asyncio.TimerHandle | None = None
        self._lazy_error: StoreError | None = None
        db_file = self._sqlite_file()
        self._journal: Journal | None = None
        self.cache = StepCache(self.select_committed, self.write, self.statements.cache_upsert)
        if db_file is not None:
            self._recover(db_file)
            if journal is None or journal:
                self._journal = Journal(db_file)

    def _sqlite_file(self) -> Path | None:
        return sqlite_file(self.url)

    def _recover(self, db_file: Path) -> None:
        """Apply the logs that writers which died left behind, then remove them."""
        by_name = self.statements.by_name
        for path, fd, entries in orphaned_logs(db_file):
            self._apply([(by_name[name], row) for name, row in entries])
            discard(path, fd)

    # ---- the event consumer -------------------------------------------------------------

    def handle(self, event: ev.Event) -> asyncio.Future[None] | None:
        """Buffer the event's writes; make them durable as soon as the event requires."""
        writes, urgency = writes_for(event, self.statements)
        if not writes:
            return None
        self._buffer.extend(writes)
        if urgency == "now":
            return self._durable()
        if urgency == "soon":
            self._flush_later()
        return None

    def write(self, writes: list[Write]) -> None:
        """Writes that nobody waits on (cache entries): committed within moments."""
        self._buffer.extend(writes)
        self._flush_later()

    def add_feedback(
        self,
        workflow: str,
        label: Mapping[str, Any],
        *,
        run_id: str | None = None,
        step: str | None = None,
        item_key: str | None = None,
    ) -> None:
        """Store a label given by hand (``relayflow feedback add``)."""
        row = {
            "feedback_id": f"manual:{secrets.token_hex(8)}",
            "workflow": workflow,
            "run_id": run_id,
            "step": step,
            "item_key": item_key,
            "label": dumps(label),
            "source": "manual",
            "created": time.time(),
        }
        self._buffer.append((self.statements.feedback_insert, row))
        self.flush()

    def record_queued(
        self,
        run_id: str,
        workflow: str,
        workflow_version: str,
        data: Mapping[str, Any],
        *,
        batch_id: str | None = None,
        item_key: str | None = None,
    ) -> None:
        """Record a run accepted but not started yet (status ``queued``), committed now: the
        server's worker pool starts it, after a restart too. Its RunStarted moves it on."""
        now = time.time()
        row = run_started_row(
            ev.RunStarted(
                run_id=run_id,
                workflow=workflow,
                workflow_version=workflow_version,
                input=data,
                ts=now,
                batch_id=batch_id,
                item_key=item_key,
            )
        )
        self._buffer.append((self.statements.run_started, {**row, "status": "queued"}))
        self.flush()

    def _durable(self) -> asyncio.Future[None] | None:
        """Make everything buffered durable before the caller goes on.

        With a journal the write happens now and nothing needs awaiting; without one the
        caller awaits a future resolved by the next commit, shared by every event buffered in
        the same turn of the event loop.
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
        assert self._journal is not None  # noqa: S101 - invariant: called only with a journal
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
            self._journal.clear()  # everything in the log is now in the database
            return
        if not self._buffer:
            return
        buffer, self._buffer = self._buffer, []
        try:
            self._apply(buffer)
        except StoreError:
            self._buffer = buffer + self._buffer
            raise

    def _apply(self, writes: list[Write]) -> None:
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
            raise StoreError(f"cannot write to the store at {self.url}: {_reason(exc)}") from exc

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


def _grouped(writes: list[Write]) -> Iterator[tuple[Statement, list[dict[str, Any]]]]:
    """Consecutive writes of the same statement, batched for executemany; order is kept."""
    current: Statement | None = None
    rows: list[dict[str, Any]] = []
    for stmt, row in writes:
        if stmt is not current and current is not None:
            yield current, rows
            rows = []
        current = stmt
        rows.append(row)
    if current is not None:
        yield current, rows
