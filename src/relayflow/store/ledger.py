"""The budget ledger's tables: counters of spend per subject and period, holds of the calls in
flight and alerts, read and written in short transactions (govern/ledger.py decides with them).

A transaction holds the database's write lock from its first statement: SQLite begins it with
``BEGIN IMMEDIATE`` (across processes); on PostgreSQL ``counter`` locks the row with
``SELECT … FOR UPDATE``, so callers take counters in key order and never deadlock. The hot path
runs statements compiled once through the driver's own cursor.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from relayflow.errors import StoreError
from relayflow.store.database import open_engine
from relayflow.store.migrations import ensure_schema
from relayflow.store.schema import budget_alerts, budget_counters, budget_holds
from relayflow.store.statements import Statement

__all__ = [
    "Counter",
    "LedgerTables",
    "LedgerTransaction",
    "Totals",
    "close_ledgers",
    "ledger_engine",
]


class Counter(NamedTuple):
    """One thing a budget counts: ``scope`` (workflow, team, token), who (``subject``), and
    which ``period`` (day, month, total) starting when (``span``: 2026-11-25, 2026-11, all)."""

    scope: str
    subject: str
    period: str
    span: str


class Totals(NamedTuple):
    cost_nanos: int = 0
    tokens: int = 0
    calls: int = 0


_lock = threading.Lock()
_engines: dict[str, Engine] = {}


def ledger_engine(url: str) -> Engine:
    """One engine per database and process, with the store's schema ensured (again each time
    it is asked for: a cheap check, and a database that was emptied meanwhile works)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = open_engine(url)
    ensure_schema(engine)
    return engine


def close_ledgers() -> None:
    """Close every ledger's connections (tests; a process that is ending)."""
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def _is(table: Any, counter: Counter) -> Any:
    c = table.c
    return and_(
        c.scope == counter.scope,
        c.subject == counter.subject,
        c.period == counter.period,
        c.span == counter.span,
    )


def _key(table: Any) -> Any:
    c = table.c
    return and_(
        c.scope == bindparam("scope"),
        c.subject == bindparam("subject"),
        c.period == bindparam("period"),
        c.span == bindparam("span"),
    )


class _Sql:
    """The statements of reserve and settle, compiled once for the database's dialect."""

    def __init__(self, engine: Engine, insert: Any) -> None:
        c, h = budget_counters.c, budget_holds.c
        now: Any = bindparam("now")
        self.ensure = Statement(
            "ensure",
            insert(budget_counters)
            .values(
                scope=bindparam("scope"),
                subject=bindparam("subject"),
                period=bindparam("period"),
                span=bindparam("span"),
                cost_nanos=0,
                tokens=0,
                calls=0,
                updated=now,
            )
            .on_conflict_do_nothing(),
            engine,
        )
        self.lock = Statement(
            "lock",
            select(c.cost_nanos, c.tokens, c.calls).where(_key(budget_counters)).with_for_update(),
            engine,
        )
        self.expire = Statement(
            "expire", delete(budget_holds).where(_key(budget_holds), h.expires <= now), engine
        )
        self.held = Statement(
            "held",
            select(func.sum(h.cost_nanos), func.sum(h.tokens)).where(_key(budget_holds)),
            engine,
        )
        self.hold = Statement("hold", budget_holds.insert(), engine)
        self.charge = Statement(
            "charge",
            update(budget_counters)
            .where(_key(budget_counters))
            .values(
                cost_nanos=c.cost_nanos + bindparam("cost"),
                tokens=c.tokens + bindparam("tokens"),
                calls=c.calls + 1,
                updated=now,
            )
            .returning(c.cost_nanos, c.tokens, c.calls),
            engine,
        )
        self.unhold = Statement(
            "unhold", delete(budget_holds).where(h.hold_id == bindparam("hold_id")), engine
        )


class LedgerTransaction:
    """The steps of one reservation or settlement, on one open transaction."""

    def __init__(self, cursor: Any, sql: _Sql) -> None:
        self._cursor = cursor
        self._sql = sql

    def _run(self, statement: Statement, row: dict[str, Any]) -> None:
        self._cursor.execute(statement.sql, statement.params(row))

    def spent(self, counter: Counter, now: float) -> Totals:
        """What ``counter`` has spent, its row created when missing and locked until the end."""
        row = {**counter._asdict(), "now": now}
        self._run(self._sql.ensure, row)
        self._run(self._sql.lock, row)
        return Totals(*self._cursor.fetchone())

    def held(self, counter: Counter, now: float) -> Totals:
        """What live holds keep on ``counter``; holds of processes that died stop counting when
        they expire, and are forgotten here."""
        row = {**counter._asdict(), "now": now}
        self._run(self._sql.expire, row)
        self._run(self._sql.held, row)
        cost, tokens = self._cursor.fetchone()
        return Totals(int(cost or 0), int(tokens or 0))

    def hold(
        self, hold_id: str, counter: Counter, cost_nanos: int, tokens: int, expires: float
    ) -> None:
        row = {
            **counter._asdict(),
            "hold_id": hold_id,
            "cost_nanos": cost_nanos,
            "tokens": tokens,
            "expires": expires,
        }
        self._run(self._sql.hold, row)

    def charge(self, counter: Counter, cost_nanos: int, tokens: int, now: float) -> Totals:
        """Add one call's cost to ``counter``; its totals after it."""
        row = {**counter._asdict(), "cost": cost_nanos, "tokens": tokens, "now": now}
        self._run(self._sql.charge, row)
        return Totals(*self._cursor.fetchone())

    def unhold(self, hold_id: str) -> None:
        self._run(self._sql.unhold, {"hold_id": hold_id})


class LedgerTables:
    """The ledger's tables in the database at ``url`` (its engine shared in the process)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = ledger_engine(url)
        self._sqlite = self.engine.dialect.name == "sqlite"
        self._insert: Any = postgresql.insert if not self._sqlite else sqlite.insert
        self._sql = _Sql(self.engine, self._insert)

    @contextmanager
    def transaction(self, what: str) -> Iterator[LedgerTransaction]:
        """One transaction on the driver's own connection (the hot path skips SQLAlchemy's
        statement building); on SQLite it holds the write lock from its first statement."""
        try:
            conn = self.engine.raw_connection()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot {what} in {self.url}: {_reason(exc)}") from exc
        try:
            cursor = conn.cursor()
            if self._sqlite:
                cursor.execute("BEGIN IMMEDIATE")
            yield LedgerTransaction(cursor, self._sql)
            cursor.close()
            conn.commit()
        except StoreError:
            conn.rollback()
            raise
        except Exception as exc:  # the driver's own errors: sqlite3, psycopg
            conn.rollback()
            raise StoreError(f"cannot {what} in {self.url}: {_reason(exc)}") from exc
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    def alert(self, counter: Counter, kind: str, workflow: str, message: str, now: float) -> bool:
        """Record an alert; True the first time for this counter and ``kind`` (in any
        process); later ones add to its count."""
        a = budget_alerts.c
        row = {
            **counter._asdict(),
            "kind": kind,
            "workflow": workflow,
            "message": message,
            "count": 1,
            "first": now,
            "last": now,
        }
        try:
            with self.engine.begin() as conn:
                # RETURNING, not rowcount: drivers differ on the rowcount of DO NOTHING
                first = (
                    conn.execute(
                        self._insert(budget_alerts)
                        .values(row)
                        .on_conflict_do_nothing()
                        .returning(a.kind)
                    ).first()
                    is not None
                )
                if not first:
                    conn.execute(
                        update(budget_alerts)
                        .where(_is(budget_alerts, counter), a.kind == kind)
                        .values(count=a.count + 1, last=now)
                    )
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot record a budget alert in {self.url}: {_reason(exc)}") from exc
        return bool(first)

    def totals(self, counter: Counter, now: float) -> tuple[Totals, Totals]:
        """What ``counter`` has spent and what live holds keep on it at ``now``."""
        c, h = budget_counters.c, budget_holds.c
        try:
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(c.cost_nanos, c.tokens, c.calls).where(_is(budget_counters, counter))
                ).first()
                held = conn.execute(
                    select(func.sum(h.cost_nanos), func.sum(h.tokens), func.count()).where(
                        _is(budget_holds, counter), h.expires > now
                    )
                ).one()
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot read the budget ledger at {self.url}: {_reason(exc)}"
            ) from exc
        spent = Totals(*row) if row is not None else Totals()
        return spent, Totals(int(held[0] or 0), int(held[1] or 0), int(held[2]))
