"""The store's schema under concurrency and across versions: many processes opening one new store
at once, a store from a newer relayflow, an unversioned store, and migration steps in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    func,
    inspect,
    select,
    text,
)

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


def _registry_tables_before_3() -> tuple[Table, Table, Table]:
    """The version registry's tables as schema version 2 wrote them: keyed by name alone."""
    old = MetaData()
    versions = Table(
        "model_versions",
        old,
        Column("name", String(200), primary_key=True),
        Column("version", String(64), primary_key=True),
        Column("kind", String(10), nullable=False),
        Column("artifact", Text, nullable=False),
        Column("target", Text),
        Column("parent", String(64)),
        Column("status", String(20), nullable=False),
        Column("metrics", Text, nullable=False),
        Column("card", Text, nullable=False),
        Column("created", Float, nullable=False),
        Index("ix_model_versions_status", "name", "status"),
    )
    events = Table(
        "model_events",
        old,
        Column("event_id", Integer, primary_key=True, autoincrement=True),
        Column("name", String(200), nullable=False),
        Column("version", String(64), nullable=False),
        Column("action", String(20), nullable=False),
        Column("note", Text, nullable=False),
        Column("ts", Float, nullable=False),
        Index("ix_model_events_name", "name", "event_id"),
    )
    labels = Table(
        "version_labels",
        old,
        Column("name", String(200), primary_key=True),
        Column("label", String(64), primary_key=True),
        Column("version", String(64), nullable=False),
        Column("updated", Float, nullable=False),
    )
    return versions, events, labels


def test_a_registry_from_before_workflow_keys_is_moved_in_place_without_losing_a_row(
    store_url: str, engine: Engine, tmp_path: Path
) -> None:
    from relayflow.store import registry_schema
    from relayflow.store.registry import Registry

    ensure_schema(engine)
    keyed = [registry_schema.model_versions, registry_schema.model_events]
    schema.metadata.drop_all(engine, tables=[*keyed, registry_schema.version_labels])
    versions, events, labels = _registry_tables_before_3()
    versions.metadata.create_all(engine)

    def version(name: str, v: str, kind: str, status: str, card: dict[str, str]) -> dict[str, Any]:
        return {
            "name": name,
            "version": v,
            "kind": kind,
            "artifact": f"text of {name} {v}",
            "target": None,
            "parent": None,
            "status": status,
            "metrics": "{}",
            "card": json.dumps(card),
            "created": 1.0,
        }

    with engine.begin() as conn:
        conn.execute(meta.update().values(value="2"))
        conn.execute(
            versions.insert(),
            [
                # used by two workflows: its history was shared, its workflow is unknown
                version("Ask", "aaa111", "prompt", "production", {"source": "seen in workflow x"}),
                # used by one workflow only
                version(
                    "Reply", "bbb111", "prompt", "archived", {"source": "seen in workflow support"}
                ),
                version("Reply", "bbb222", "prompt", "production", {"source": "x"}),
                # retraining's card names the workflow
                version("fraud", "ccc111", "sklearn", "production", {"workflow": "fraudwf"}),
                version("Orphan", "ddd111", "prompt", "candidate", {"source": "adopted"}),
            ],
        )
        conn.execute(
            registry_schema.prompt_uses.insert(),
            [
                {"name": n, "version": v, "workflow": w, "first_seen": 1.0, "last_seen": 2.0}
                for n, v, w in [
                    ("Ask", "aaa111", "support"),
                    ("Ask", "aaa111", "triage"),
                    ("Reply", "bbb111", "support"),
                    ("Reply", "bbb222", "support"),
                ]
            ],
        )
        conn.execute(
            events.insert(),
            [
                {"name": n, "version": v, "action": a, "note": "", "ts": float(i)}
                for i, (n, v, a) in enumerate(
                    [
                        ("Reply", "bbb111", "adopt"),
                        ("Ask", "aaa111", "adopt"),
                        ("Reply", "bbb222", "promote"),
                        ("fraud", "ccc111", "adopt"),
                    ]
                )
            ],
        )
        conn.execute(
            labels.insert(),
            [
                {"name": "Reply", "label": "v1", "version": "bbb111", "updated": 1.0},
                {"name": "Ask", "label": "v1", "version": "aaa111", "updated": 1.0},
            ],
        )

    with Registry(store_url, artifacts=tmp_path / "artifacts") as registry:
        assert _version(engine) == [("schema_version", str(SCHEMA_VERSION))]
        moved = {(v.workflow, v.name, v.version, v.status) for v in registry.list()}
        assert moved == {
            ("-", "Ask", "aaa111", "production"),
            ("support", "Reply", "bbb111", "archived"),
            ("support", "Reply", "bbb222", "production"),
            ("fraudwf", "fraud", "ccc111", "production"),
            ("-", "Orphan", "ddd111", "candidate"),
        }
        assert registry.get("Reply", "bbb1").artifact == "text of Reply bbb111"
        assert [e.action for e in registry.events("Reply")] == ["adopt", "promote"]
        assert registry.labels("Reply") == {
            ("Reply", "v1"): "bbb111",
            ("Reply", "production"): "bbb222",
        }
        assert registry.labels("Ask", workflow="-") == {
            ("Ask", "v1"): "aaa111",
            ("Ask", "production"): "aaa111",
        }
        # the history goes on where it was: a rollback replays the moved events
        assert registry.rollback("Reply").version == "bbb111"
        assert [e.action for e in registry.events("Reply")] == ["adopt", "promote", "rollback"]
        # the workflows that shared the old version still show as its users
        from relayflow.prompts.registry import prompt_versions

        shared = [p for p in prompt_versions(registry) if p.name == "Ask"]
        assert [(p.workflow, p.workflows) for p in shared] == [("-", ("support", "triage"))]

    with engine.connect() as conn:
        names = set(inspect(conn).get_table_names())
        rows = conn.execute(select(func.count()).select_from(registry_schema.model_events))
        assert rows.scalar() == 5  # four moved and the rollback's
    assert not {n for n in names if n.endswith("_before_3")}, "no copy left behind"
