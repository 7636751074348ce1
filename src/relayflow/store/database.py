"""Opening a database: the one engine factory of relayflow, so that the run store, the budget
ledger, the token tables and the feedback loop all open SQLite and PostgreSQL the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from relayflow.errors import StoreError

__all__ = [
    "Engine",
    "is_memory",
    "open_database",
    "open_engine",
    "sqlite_folder",
    "store_url",
]

#: the URLs of a SQLite database in memory
_MEMORY = ("sqlite://", "sqlite:///:memory:")


def store_url(url_or_path: str) -> str:
    """Accept a SQLAlchemy URL or a bare file path (meaning SQLite)."""
    return url_or_path if "://" in url_or_path else f"sqlite:///{url_or_path}"


def is_memory(url: str) -> bool:
    """A SQLite database in memory: another engine on it would see a different database."""
    return url in (*_MEMORY, ":memory:") or "mode=memory" in url


def open_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    if url in _MEMORY:
        # one connection shared by every thread: otherwise each thread's connection is a
        # database of its own (the budget ledger of runs that have no store lives here)
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    else:
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        # WAL + synchronous=NORMAL: a commit survives kill -9 of the process (the WAL is in
        # the OS's hands) without an fsync per commit.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def open_database(url_or_path: str, *, create: bool = False) -> Engine:
    """`open_engine` on a URL or a SQLite path (whose folder is made when missing), with a
    StoreError for a URL that cannot be opened; ``create`` brings the schema up to date (every
    table: the runs', the ledger's, the tokens', the feedback loop's)."""
    from relayflow.store.migrations import ensure_schema

    full = store_url(url_or_path)
    try:
        if full.startswith("sqlite") and "://" not in url_or_path:
            Path(url_or_path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = open_engine(full)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open the store at {full}: {_reason(exc)}") from exc
    if create:
        try:
            ensure_schema(engine)
        except StoreError:
            engine.dispose()
            raise
    return engine


def sqlite_folder(engine: Engine) -> Path | None:
    """The folder of a SQLite database file; None for a database server or one in memory."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return Path(database).expanduser().resolve().parent
    return None


def _reason(exc: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's background link."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
