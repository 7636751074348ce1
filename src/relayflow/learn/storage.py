"""Where the feedback loop keeps things: an engine on the run store's database (its own, beside
the runner's), the artifacts folder, atomic file writes, and the drift checkpoints."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from relayflow.errors import StoreError
from relayflow.store import registry_schema as tables
from relayflow.store.migrations import ensure_schema

ARTIFACTS_ENV = "RELAYFLOW_ARTIFACTS"


def open_engine(url: str, *, create: bool = False) -> Engine:
    """An engine on the store (a URL or a SQLite path) with the run store's SQLite settings;
    ``create`` makes the tables that are missing (the feedback loop's and the runs')."""
    from relayflow.store.sql_store import store_url

    full = store_url(url)
    try:
        if full.startswith("sqlite"):
            if "://" not in url:
                Path(url).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(full, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(full, pool_pre_ping=True)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open the store at {full}: {exc}") from exc
    if create:
        try:
            ensure_schema(engine)
        except StoreError:
            engine.dispose()
            raise
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def default_artifacts(engine: Engine) -> Path:
    """``$RELAYFLOW_ARTIFACTS``, else ``models/`` beside a SQLite store file, else
    ``.relayflow/models`` in the current directory (for a database server)."""
    configured = os.environ.get(ARTIFACTS_ENV)
    if configured:
        return Path(configured).expanduser()
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return Path(database).expanduser().resolve().parent / "models"
    return Path.cwd() / ".relayflow" / "models"


def write_atomically(path: Path, content: bytes) -> None:
    """Write ``path`` so that a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def insert(engine: Engine, table: Any) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_…``."""
    return postgresql.insert(table) if engine.dialect.name == "postgresql" else sqlite.insert(table)


@contextmanager
def transaction(engine: Engine, what: str = "the store") -> Iterator[Connection]:
    try:
        with engine.begin() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot write {what} at {engine.url}: {exc}") from exc


def read(engine: Engine, query: Any, what: str = "the store") -> list[Any]:
    try:
        with engine.connect() as conn:
            return list(conn.execute(query))
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read {what} at {engine.url}: {exc}") from exc


def load_state(engine: Engine, workflow: str, step: str) -> dict[str, Any] | None:
    """The checkpoint of a retrain step (its drift monitor and schedule counters)."""
    t = tables.retrain_state
    rows = read(engine, select(t.c.state).where(t.c.workflow == workflow, t.c.step == step))
    return json.loads(rows[0].state) if rows else None


def save_state(engine: Engine, workflow: str, step: str, state: Mapping[str, Any]) -> None:
    t = tables.retrain_state
    ins = insert(engine, t)
    stmt = ins.on_conflict_do_update(
        index_elements=[t.c.workflow, t.c.step],
        set_={"state": ins.excluded.state, "updated": ins.excluded.updated},
    )
    text = json.dumps(state, default=str)
    with transaction(engine) as conn:
        conn.execute(
            stmt, {"workflow": workflow, "step": step, "state": text, "updated": time.time()}
        )
