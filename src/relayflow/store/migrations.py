"""The store's schema version and how a database reaches it: created, upgraded in place by
ordered steps, or refused when a newer relayflow wrote it. Safe when many processes open one.

Every process that opens a store (the runner, the server, the token and budget tables, the
feedback loop) calls ``ensure_schema``. The work is serialized by the database itself: SQLite's
write lock (``BEGIN IMMEDIATE``, held across processes until the commit) or a PostgreSQL
transaction-scoped advisory lock, so that two processes never both decide a table is missing.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import NamedTuple

from sqlalchemy import Column, Float, String, Table, Text, inspect, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from relayflow.errors import StoreError
from relayflow.store import registry_schema
from relayflow.store.versions_by_workflow import key_versions_by_workflow

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "ensure_schema", "meta", "stored_version"]

#: the run store's metadata (schema.py), taken through registry_schema.py so that the feedback
#: loop's tables, defined on it there, are always part of what is created
metadata = registry_schema.metadata

#: what the store records about itself; ``schema_version`` is the one key today
meta = Table(
    "relayflow_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated", Float, nullable=False),
)

VERSION_KEY = "schema_version"

#: a store with relayflow's tables but no ``relayflow_meta`` was written before versioning
UNVERSIONED = 1

#: the PostgreSQL advisory lock key of schema changes (any fixed 63-bit number; this one is
#: derived from a name so that it does not collide with the small integers people pick)
PG_LOCK_KEY = zlib.crc32(b"relayflow schema") << 16


class Migration(NamedTuple):
    """One step from ``version - 1`` to ``version``. ``apply`` changes tables that exist (adds
    a column, fills it); new tables need no step: they are created after the steps run."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _nothing(_conn: Connection) -> None:
    """Version 2 only adds tables (``relayflow_meta``, ``bad_records``) and the record of the
    version itself."""


#: in order; the last one's version is the schema this relayflow writes
MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "record the schema version; add the batches' bad records", _nothing),
    Migration(3, "key the version registry by workflow and name", key_versions_by_workflow),
)

SCHEMA_VERSION = MIGRATIONS[-1].version


def ensure_schema(engine: Engine) -> None:
    """Make the database at ``engine`` a store of ``SCHEMA_VERSION``: create the tables that are
    missing, apply the migrations an older store needs and record the version; refuse a store
    written by a newer relayflow with a StoreError that says which version and what to do."""
    url = engine.url.render_as_string(hide_password=True)
    try:
        if _up_to_date(engine, url):
            return
        with engine.connect() as conn:
            _lock(conn)
            _upgrade(conn, url)
            conn.commit()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot prepare the store at {url}: {_reason(exc)}") from exc


def stored_version(conn: Connection) -> int | None:
    """The version the store records, or None when it records none (new, or unversioned)."""
    if not inspect(conn).has_table(meta.name):
        return None
    value = conn.execute(select(meta.c.value).where(meta.c.key == VERSION_KEY)).scalar()
    return None if value is None else int(value)


def _up_to_date(engine: Engine, url: str) -> bool:
    """Without a lock: whether the store already has this version and every table (the common
    case, one cheap read); a newer store is refused here too."""
    with engine.connect() as conn:
        names = set(inspect(conn).get_table_names())
        if meta.name not in names:
            return False
        version = stored_version(conn)
        conn.rollback()
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(_newer(url, version))
    return version == SCHEMA_VERSION and names >= set(metadata.tables)


def _lock(conn: Connection) -> None:
    """Hold the database's schema lock until ``conn`` commits or rolls back."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        # the write lock at once, not at the first write: a second process waits here (up to
        # the busy timeout) instead of reading the same "missing" tables. An engine may begin
        # IMMEDIATE itself on SQLAlchemy's "begin" event (govern/ledger.py's does).
        conn.begin()
        if not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})


def _upgrade(conn: Connection, url: str) -> None:
    """Under the lock: bring the store to ``SCHEMA_VERSION`` (in one transaction where the
    database's DDL is transactional: SQLite and PostgreSQL both are)."""
    version = stored_version(conn)
    if version is None:
        existing = set(inspect(conn).get_table_names()) & set(metadata.tables)
        version = UNVERSIONED if existing else SCHEMA_VERSION  # an empty database is new
    if version > SCHEMA_VERSION:
        raise StoreError(_newer(url, version))
    for step in MIGRATIONS:
        if version < step.version:
            step.apply(conn)
    metadata.create_all(conn, checkfirst=True)
    _record(conn, SCHEMA_VERSION)


def _record(conn: Connection, version: int) -> None:
    values = {"value": str(version), "updated": time.time()}
    done = conn.execute(meta.update().where(meta.c.key == VERSION_KEY).values(**values))
    if not done.rowcount:
        conn.execute(meta.insert().values(key=VERSION_KEY, **values))


def _newer(url: str, version: int) -> str:
    from relayflow.version import __version__

    return (
        f"the store at {url} has schema version {version}, written by a newer relayflow; "
        f"relayflow {__version__} knows versions up to {SCHEMA_VERSION} — upgrade relayflow "
        "(pip install -U relayflow) or use another store"
    )


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
