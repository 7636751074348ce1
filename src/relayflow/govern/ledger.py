"""The budget ledger: what each workflow, team and token spent per period, kept in the run
store's database, with holds for the model calls in flight.

Reserving is one transaction that reads the counters, the live holds and writes a hold, so no
two callers can both take the last of a budget: SQLite starts it with ``BEGIN IMMEDIATE`` (the
database's write lock, across processes); PostgreSQL locks the counter rows with
``SELECT … FOR UPDATE`` (always in key order, so two reservations never deadlock). Calls are
synchronous and short (no network between read and write), so they run on the event loop as
the store's own writes do.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from relayflow.errors import StoreError
from relayflow.store.migrations import ensure_schema
from relayflow.store.schema import budget_alerts, budget_counters, budget_holds
from relayflow.store.statements import Statement

#: amounts of money are kept in billionths of the prices' unit (exact sums)
NANOS = 1_000_000_000

#: the ledger of runs that have no store: one in-memory database per process
MEMORY_URL = "sqlite://"

Clock = Callable[[], float]


def to_nanos(amount: float) -> int:
    return round(amount * NANOS)


class Counter(NamedTuple):
    """One thing a budget counts: ``scope`` (workflow, team, token), who (``subject``), and
    which ``period`` (day, month, total) starting when (``span``: 2026-11-25, 2026-11, all)."""

    scope: str
    subject: str
    period: str
    span: str


class Cap(NamedTuple):
    """What a counter may reach; None where that measure is not limited."""

    counter: Counter
    cost_nanos: int | None
    tokens: int | None


class Totals(NamedTuple):
    cost_nanos: int = 0
    tokens: int = 0
    calls: int = 0


class Over(NamedTuple):
    """Why a reservation was refused: ``cap`` (its position in the list asked) would pass its
    ``measure`` (``currency`` or ``tokens``)."""

    cap: int
    measure: str
    spent: int
    held: int
    asked: int
    limit: int


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation: the worst case of one call, held on every counter it counts on."""

    hold_id: str
    counters: tuple[Counter, ...]


_lock = threading.Lock()
_engines: dict[str, Engine] = {}


def ledger_engine(url: str) -> Engine:
    """One engine per database and process, with the store's schema ensured (again each time
    it is asked for: a cheap check, and a database that was emptied meanwhile works)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create_engine(url)
    ensure_schema(engine)
    return engine


def close_ledgers() -> None:
    """Close every ledger's connections (tests; a process that is ending)."""
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()


def _create_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    if url == MEMORY_URL:
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    else:
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # the driver's own transaction handling off: we begin ourselves, IMMEDIATE
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # take the write lock before reading, so check-then-write is atomic across processes
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


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


def _run(cursor: Any, statement: Statement, row: dict[str, Any]) -> None:
    cursor.execute(statement.sql, statement.params(row))


class Ledger:
    """Reserve, settle and release model spend against counters in one database."""

    def __init__(self, url: str | None, *, clock: Clock = time.time) -> None:
        self.url = url or MEMORY_URL
        self.engine = ledger_engine(self.url)
        self.clock = clock
        self._insert: Any
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            self._insert = pg_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            self._insert = sqlite_insert
        self._sqlite = self.engine.dialect.name == "sqlite"
        self._sql = _Sql(self.engine, self._insert)

    def _begin(self) -> Any:
        try:
            return self.engine.begin()
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot open the budget ledger at {self.url}: {_reason(exc)}"
            ) from exc

    def reserve(
        self,
        caps: Sequence[Cap],
        counters: Sequence[Counter],
        cost_nanos: int,
        tokens: int,
        ttl: float,
    ) -> Hold | Over:
        """Hold ``cost_nanos`` and ``tokens`` on ``counters`` unless that would take a counter
        of ``caps`` past its limit (spent + held by calls in flight + this call)."""
        keys = sorted(set(counters) | {cap.counter for cap in caps})
        now = self.clock()
        sql = self._sql
        with self._transaction("reserve budget") as cursor:
            spent: dict[Counter, Totals] = {}
            held: dict[Counter, Totals] = {}
            for key in keys:  # in key order: PostgreSQL takes the row locks in that order
                row = {**key._asdict(), "now": now}
                _run(cursor, sql.ensure, row)
                _run(cursor, sql.lock, row)
                spent[key] = Totals(*cursor.fetchone())
                # holds of processes that died stop counting when they expire; forget them
                _run(cursor, sql.expire, row)
                _run(cursor, sql.held, row)
                cost, count = cursor.fetchone()
                held[key] = Totals(int(cost or 0), int(count or 0))
            for index, cap in enumerate(caps):
                over = _check(index, cap, spent, held, cost_nanos, tokens)
                if over is not None:
                    return over
            hold = Hold(secrets.token_hex(8), tuple(keys))
            for key in keys:
                _run(
                    cursor,
                    sql.hold,
                    {
                        **key._asdict(),
                        "hold_id": hold.hold_id,
                        "cost_nanos": cost_nanos,
                        "tokens": tokens,
                        "expires": now + ttl,
                    },
                )
            return hold

    def settle(self, hold: Hold, cost_nanos: int, tokens: int) -> dict[Counter, Totals]:
        """Replace ``hold`` by what the call really cost; the counters' totals after it."""
        now = self.clock()
        after: dict[Counter, Totals] = {}
        with self._transaction("settle budget") as cursor:
            for key in hold.counters:  # sorted: locks are taken in key order
                row = {**key._asdict(), "cost": cost_nanos, "tokens": tokens, "now": now}
                _run(cursor, self._sql.charge, row)
                after[key] = Totals(*cursor.fetchone())
            _run(cursor, self._sql.unhold, {"hold_id": hold.hold_id})
        return after

    def release(self, hold: Hold) -> None:
        """Give back a hold whose call cost nothing (it failed before the model ran)."""
        with self._transaction("release budget") as cursor:
            _run(cursor, self._sql.unhold, {"hold_id": hold.hold_id})

    @contextmanager
    def _transaction(self, what: str) -> Iterator[Any]:
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
            yield cursor
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

    def alert(self, counter: Counter, kind: str, workflow: str, message: str) -> bool:
        """Record an alert; True the first time for this counter and ``kind`` (in any
        process), so that it is logged and counted once; later ones add to its count."""
        now = self.clock()
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
            with self._begin() as conn:
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

    def totals(self, counter: Counter) -> tuple[Totals, Totals]:
        """What ``counter`` has spent and what live holds keep on it now."""
        now = self.clock()
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


def _check(
    index: int,
    cap: Cap,
    spent: dict[Counter, Totals],
    held: dict[Counter, Totals],
    cost_nanos: int,
    tokens: int,
) -> Over | None:
    done = spent.get(cap.counter, Totals())
    busy = held.get(cap.counter, Totals())
    if (
        cap.cost_nanos is not None
        and done.cost_nanos + busy.cost_nanos + cost_nanos > cap.cost_nanos
    ):
        return Over(index, "currency", done.cost_nanos, busy.cost_nanos, cost_nanos, cap.cost_nanos)
    if cap.tokens is not None and done.tokens + busy.tokens + tokens > cap.tokens:
        return Over(index, "tokens", done.tokens, busy.tokens, tokens, cap.tokens)
    return None
