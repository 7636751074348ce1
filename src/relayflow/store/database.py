"""Opening a database: the one place relayflow creates a SQLAlchemy engine, so that every part
that keeps something in the store's database (runs, ledger, registry, access tokens, the
feedback loop) opens SQLite and PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from relayflow.errors import StoreError

__all__ = [
    "SQLITE_BUSY_SECONDS",
    "Engine",
    "is_memory",
    "open_database",
    "open_engine",
    "reason",
    "sqlite_file",
    "sqlite_folder",
    "store_url",
]

#: how long a SQLite writer waits for another process's write lock before it gives up
SQLITE_BUSY_SECONDS = 30

#: the URLs of a SQLite database in memory
_MEMORY = ("sqlite://", "sqlite:///:memory:")


def store_url(url_or_path: str) -> str:
    """Accept a SQLAlchemy URL or a bare file path (meaning SQLite)."""
    return url_or_path if "://" in url_or_path else f"sqlite:///{url_or_path}"


def is_memory(url: str) -> bool:
    """A SQLite database in memory: another engine on it would see a different database."""
    return url in (*_MEMORY, ":memory:") or "mode=memory" in url


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database at ``url`` (a URL or a path); None for another database
    or one in memory."""
    parsed = make_url(store_url(url))
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def open_engine(url: str) -> Engine:
    """An engine on the database at ``url`` (a URL or a SQLite file path).

    SQLite: usable from any thread, WAL with ``synchronous=NORMAL`` (a commit survives
    ``kill -9`` of the process without an fsync per commit) and a busy timeout, so that many
    processes share one file; a database in memory is one connection shared by every thread
    (otherwise each thread's connection is a database of its own: the budget ledger of runs
    that have no store lives there). PostgreSQL: a pool that checks a connection before
    lending it, since a server may have dropped it while idle. Creates no table: see
    migrations.py.
    """
    full = store_url(url)
    try:
        if not full.startswith("sqlite"):
            return create_engine(full, pool_pre_ping=True)
        if full in _MEMORY:
            engine = create_engine(
                full, connect_args={"check_same_thread": False}, poolclass=StaticPool
            )
        else:
            engine = create_engine(
                full, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS}
            )
    except (SQLAlchemyError, ImportError) as exc:
        # ImportError: the URL names a driver that is not installed (psycopg: the postgres extra)
        raise StoreError(f"cannot open the store at {full}: {reason(exc)}") from exc
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
    cursor.close()


def open_database(url_or_path: str, *, create: bool = False) -> Engine:
    """`open_engine` on a URL or a SQLite path (whose folder is made when missing);
    ``create`` brings the schema up to date (every table: the runs', the ledger's, the
    tokens', the feedback loop's)."""
    from relayflow.store.migrations import ensure_schema

    full = store_url(url_or_path)
    if full.startswith("sqlite") and "://" not in url_or_path:
        Path(url_or_path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = open_engine(full)
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


def reason(exc: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's background link."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
