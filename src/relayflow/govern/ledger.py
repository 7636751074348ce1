"""The budget ledger: what each workflow, team and token spent per period, kept in the run
store's database (store/ledger.py keeps the rows), with holds for the model calls in flight.

Reserving is one transaction that reads the counters, the live holds and writes a hold, so no
two callers can both take the last of a budget: SQLite starts it with ``BEGIN IMMEDIATE`` (the
database's write lock, across processes); PostgreSQL locks the counter rows with
``SELECT … FOR UPDATE`` (always in key order, so two reservations never deadlock). Calls are
synchronous and short (no network between read and write), so they run on the event loop as
the store's own writes do.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from relayflow.store.ledger import Counter, LedgerTables, Totals, close_ledgers

__all__ = [
    "MEMORY_URL",
    "NANOS",
    "Cap",
    "Counter",
    "Hold",
    "Ledger",
    "Over",
    "Totals",
    "close_ledgers",
    "to_nanos",
]

#: amounts of money are kept in billionths of the prices' unit (exact sums)
NANOS = 1_000_000_000

#: the ledger of runs that have no store: one in-memory database per process
MEMORY_URL = "sqlite://"

Clock = Callable[[], float]


def to_nanos(amount: float) -> int:
    return round(amount * NANOS)


class Cap(NamedTuple):
    """What a counter may reach; None where that measure is not limited."""

    counter: Counter
    cost_nanos: int | None
    tokens: int | None


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


class Ledger:
    """Reserve, settle and release model spend against counters in one database."""

    def __init__(self, url: str | None, *, clock: Clock = time.time) -> None:
        self.url = url or MEMORY_URL
        self.tables = LedgerTables(self.url)
        self.clock = clock

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
        with self.tables.transaction("reserve budget") as tx:
            spent: dict[Counter, Totals] = {}
            held: dict[Counter, Totals] = {}
            for key in keys:  # in key order: PostgreSQL takes the row locks in that order
                spent[key] = tx.spent(key, now)
                held[key] = tx.held(key, now)
            for index, cap in enumerate(caps):
                over = _check(index, cap, spent, held, cost_nanos, tokens)
                if over is not None:
                    return over
            hold = Hold(secrets.token_hex(8), tuple(keys))
            for key in keys:
                tx.hold(hold.hold_id, key, cost_nanos, tokens, now + ttl)
            return hold

    def settle(self, hold: Hold, cost_nanos: int, tokens: int) -> dict[Counter, Totals]:
        """Replace ``hold`` by what the call really cost; the counters' totals after it."""
        now = self.clock()
        with self.tables.transaction("settle budget") as tx:
            # sorted: locks are taken in key order
            after = {key: tx.charge(key, cost_nanos, tokens, now) for key in hold.counters}
            tx.unhold(hold.hold_id)
        return after

    def release(self, hold: Hold) -> None:
        """Give back a hold whose call cost nothing (it failed before the model ran)."""
        with self.tables.transaction("release budget") as tx:
            tx.unhold(hold.hold_id)

    def alert(self, counter: Counter, kind: str, workflow: str, message: str) -> bool:
        """Record an alert; True the first time for this counter and ``kind`` (in any
        process), so that it is logged and counted once; later ones add to its count."""
        return self.tables.alert(counter, kind, workflow, message, self.clock())

    def totals(self, counter: Counter) -> tuple[Totals, Totals]:
        """What ``counter`` has spent and what live holds keep on it now."""
        return self.tables.totals(counter, self.clock())


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
