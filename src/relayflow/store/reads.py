"""What every query of the store stands on: a read after everything written is visible, a read
of what is committed now, and a write of its own transaction. The repositories (runs.py,
reviews.py, costs.py, idempotency.py, catalog.py) are built on these and nothing else."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from relayflow.errors import StoreError
from relayflow.store.database import reason


class StoreReads(abc.ABC):
    """The store's access to its database; the concrete store supplies ``engine``, ``url`` and
    ``flush`` (which puts what the event stream wrote into the database)."""

    engine: Engine
    url: str

    @abc.abstractmethod
    def flush(self) -> None: ...

    def _select(self, query: Any) -> list[Any]:
        """Run ``query`` once everything written so far is in the database."""
        self.flush()
        return self.select_committed(query)

    def select_committed(self, query: Any) -> list[Any]:
        """Run ``query`` on what is in the database now, without writing what is pending."""
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(query))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the store at {self.url}: {reason(exc)}") from exc

    def _execute(self, *statements: Any) -> None:
        """Run ``statements`` in one transaction, after everything written before them."""
        self.flush()
        try:
            with self.engine.begin() as conn:
                for statement in statements:
                    conn.execute(statement)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot write to the store at {self.url}: {reason(exc)}") from exc

    @contextmanager
    def _transaction(self, what: str) -> Iterator[Connection]:
        """One transaction of a repository's own; a database error is a StoreError naming
        ``what`` was being written."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot write {what}: {reason(exc)}") from exc
