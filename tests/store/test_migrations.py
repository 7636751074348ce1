"""The store's schema under concurrency and across versions: many processes opening one new store
at once, a store from a newer relayflow, an unversioned store, and migration steps in order."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, select, text

from relayflow.errors import StoreError
from relayflow.govern.access import TokenStore
from relayflow.store import migrations, schema
from relayflow.store.database import open_database
from relayflow.store.ledger import close_ledgers, ledger_engine
from relayflow.store.migrations import SCHEMA_VERSION, Migration, ensure_schema, meta
from relayflow.store.sql_store import SqlStore

#: one process opening the store through one of the four doors, as soon as the file ``go``
#: appears (everything is imported before, so that they all race on the schema itself)
OPEN_ONE = """
import sys, time
from pathlib import Path
from relayflow.govern.access import TokenStore
from relayflow.store.ledger import close_ledgers, ledger_engine
from relayflow.store.database import open_database
from relayflow.store.sql_store import SqlStore

door, go, url = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
while not go.exists():
    time.sleep(0.001)
if door == "store":
    SqlStore(url).close()
elif door == "tokens":
    engine = open_database(url)
    TokenStore(engine)
    engine.dispose()
elif door == "ledger":
    ledger_engine(url)
    close_ledgers()
else:
    open_database(url, create=True).dispose()
"""

DOORS = ("store", "tokens", "ledger", "registry")


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = create_engine(store_url)
    yield engine
    engine.dispose()


def _version(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [(r.key, r.value) for r in conn.execute(select(meta.c.key, meta.c.value))]


def test_processes_opening_a_new_store_at_once_all_succeed_with_one_schema(
    store_url: str, engine: Engine, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_ONE, door, str(go), store_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for door in DOORS * 2
    ]
    try:
        time.sleep(0.5)  # not a timing assertion: lets the interpreters get to the wait
        go.touch()
        outcomes = [(p.wait(timeout=120), p.communicate()[1]) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert [code for code, _ in outcomes] == [0] * len(processes), outcomes
    assert _version(engine) == [("schema_version", str(SCHEMA_VERSION))]
    assert set(inspect(engine).get_table_names()) >= set(schema.metadata.tables)


def _future(engine: Engine) -> None:
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(meta.update().values(value=str(SCHEMA_VERSION + 1)))


OPENERS: dict[str, Callable[[str, Engine], object]] = {
    "store": lambda url, _engine: SqlStore(url).close(),
    "tokens": lambda _url, engine: TokenStore(engine),
    "ledger": lambda url, _engine: ledger_engine(url),
    "registry": lambda url, _engine: open_database(url, create=True).dispose(),
}


@pytest.mark.parametrize("door", DOORS)
def test_a_store_from_a_newer_relayflow_is_refused_with_the_version_and_the_fix(
    store_url: str, engine: Engine, door: str
) -> None:
    _future(engine)
    try:
        with pytest.raises(StoreError) as info:
            OPENERS[door](store_url, engine)
    finally:
        close_ledgers()
    message = str(info.value)
    assert "\n" not in message
    assert f"schema version {SCHEMA_VERSION + 1}, written by a newer relayflow" in message
    assert f"knows versions up to {SCHEMA_VERSION} — upgrade relayflow" in message
    assert _version(engine) == [("schema_version", str(SCHEMA_VERSION + 1))]  # left as it was


def test_the_cli_refuses_a_newer_store_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    engine = create_engine(f"sqlite:///{db}")
    try:
        _future(engine)
    finally:
        engine.dispose()
    result = subprocess.run(
        [sys.executable, "-m", "relayflow", "runs", "list", "--store", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: the store at sqlite:///{db} has schema version")
    assert "upgrade relayflow" in line


def test_a_store_written_before_versioning_is_migrated_and_keeps_its_rows(
    store_url: str, engine: Engine
) -> None:
    # the previous schema: today's tables without relayflow_meta and the tables added since
    added = ("relayflow_meta", "bad_records")
    old = [t for t in schema.metadata.sorted_tables if t.name not in added]
    schema.metadata.create_all(engine, tables=old)
    row = {
        "run_id": "r-old",
        "workflow": "wf",
        "workflow_version": "v1",
        "status": "succeeded",
        "input": '{"q": 1}',
        "output": '{"a": 2}',
        "started": 1.0,
        "ended": 2.0,
        "updated": 2.0,
    }
    with engine.begin() as conn:
        conn.execute(schema.runs.insert().values(**row))
    store = SqlStore(store_url)
    try:
        run = store.get_run("r-old")
        assert run is not None and (run.status, run.output) == ("succeeded", {"a": 2})
    finally:
        store.close()
    assert _version(engine) == [("schema_version", str(SCHEMA_VERSION))]
    assert {"relayflow_meta", "bad_records"} <= set(inspect(engine).get_table_names())


def test_a_table_added_to_the_schema_is_created_on_an_existing_store(
    store_url: str, engine: Engine
) -> None:
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE bad_records"))  # as if this relayflow had just added it
    SqlStore(store_url).close()
    assert "bad_records" in inspect(engine).get_table_names()


def test_migration_steps_run_in_order_from_the_stored_version_in_one_transaction(
    store_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_schema(engine)  # a store of today's version
    applied: list[int] = []
    # the two steps after today's version, and a broken third
    one, two, three = SCHEMA_VERSION + 1, SCHEMA_VERSION + 2, SCHEMA_VERSION + 3

    def step(version: int) -> Callable[..., None]:
        return lambda conn: applied.append(version)

    def broken(conn: object) -> None:
        raise RuntimeError(f"step {three} is broken")

    steps = (*migrations.MIGRATIONS, *(Migration(v, f"step {v}", step(v)) for v in (one, two)))
    monkeypatch.setattr(migrations, "MIGRATIONS", steps)
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", two)
    ensure_schema(engine)
    assert applied == [one, two]
    assert _version(engine) == [("schema_version", str(two))]
    ensure_schema(engine)
    assert applied == [one, two]  # an up-to-date store runs nothing

    monkeypatch.setattr(migrations, "MIGRATIONS", (*steps, Migration(three, "broken", broken)))
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", three)
    with pytest.raises(RuntimeError, match=f"step {three} is broken"):
        ensure_schema(engine)
    assert _version(engine) == [("schema_version", str(two))]  # nothing half-done was kept
