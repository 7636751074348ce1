"""Schema version 3: the version registry is keyed by workflow. Before it, a prompt's history was
keyed by its step's name alone, so two workflows with a step of the same name shared one.

The rows of an older store move to the new key without loss. Their workflow was not recorded,
so each name's is found from what the store does record: the workflows that ran its prompt
versions (``prompt_uses``) and the workflow its versions' model cards name. A name that exactly
one workflow used goes to that workflow, so its history reads on as before; any other (shared
by several workflows, or used by none) goes to the workflow ``-`` (`UNKNOWN_WORKFLOW`), where
it stays readable (``relayflow prompts list -w -``) and where new runs do not add to it: each
workflow starts its own history at its next run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table, inspect, select, text
from sqlalchemy.engine import Connection

from relayflow.store import registry_schema as tables
from relayflow.store.versions import UNKNOWN_WORKFLOW

__all__ = ["key_versions_by_workflow", "workflow_of_each_name"]

#: the tables whose key gains ``workflow``, in the order they are rebuilt
_KEYED = (tables.model_versions, tables.model_events, tables.version_labels)
#: the card's note of a prompt registered when a run started (prompts/registry.py before 3)
_SEEN_IN = "seen in workflow "


def key_versions_by_workflow(conn: Connection) -> None:
    """Rebuild the three tables with ``workflow`` in their key, each row under its name's
    workflow (see the module's docstring). Runs under the schema lock, in its transaction."""
    present = set(inspect(conn).get_table_names())
    keyed = [t for t in _KEYED if t.name in present and not _has_workflow(conn, t)]
    if not keyed:
        return  # a store that never registered a version: create_all makes the new tables
    owners = workflow_of_each_name(conn, present)
    for table in keyed:
        old = f"{table.name}_before_3"
        # a copy without the old key and indexes (their names are taken by the new table's)
        conn.execute(text(f"CREATE TABLE {old} AS SELECT * FROM {table.name}"))  # noqa: S608
        conn.execute(text(f"DROP TABLE {table.name}"))
        table.create(conn)
        rows = [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {old}"))]  # noqa: S608
        if rows:
            moved = [{**row, "workflow": owners.get(row["name"], UNKNOWN_WORKFLOW)} for row in rows]
            conn.execute(table.insert(), moved)
        conn.execute(text(f"DROP TABLE {old}"))
    if conn.dialect.name == "postgresql" and tables.model_events in keyed:
        _restart_event_ids(conn)


def workflow_of_each_name(conn: Connection, present: set[str]) -> dict[str, str]:
    """``name -> workflow`` for each name exactly one workflow is known to have used."""
    known: dict[str, set[str]] = {}
    if tables.prompt_uses.name in present:
        u = tables.prompt_uses
        for name, workflow in conn.execute(select(u.c.name, u.c.workflow)):
            known.setdefault(name, set()).add(workflow)
    if tables.model_versions.name in present:
        for name, card in conn.execute(text("SELECT name, card FROM model_versions")):
            workflow = _card_workflow(card)
            known.setdefault(name, set())
            if workflow is not None:
                known[name].add(workflow)
    return {name: next(iter(found)) for name, found in known.items() if len(found) == 1}


def _card_workflow(card: str | None) -> str | None:
    """The workflow a version's model card names (retraining's cards), or the one whose run
    registered the prompt (``seen in workflow X``)."""
    try:
        value: Any = json.loads(card or "{}")
    except ValueError:
        return None
    if not isinstance(value, Mapping):
        return None
    workflow = value.get("workflow")
    if isinstance(workflow, str) and workflow:
        return workflow
    source = value.get("source")
    if isinstance(source, str) and source.startswith(_SEEN_IN):
        return source[len(_SEEN_IN) :] or None
    return None


def _has_workflow(conn: Connection, table: Table) -> bool:
    return any(c["name"] == "workflow" for c in inspect(conn).get_columns(table.name))


def _restart_event_ids(conn: Connection) -> None:
    """The copied events keep their ids; the new table's sequence goes on after them."""
    conn.execute(
        text(
            "SELECT setval(pg_get_serial_sequence('model_events', 'event_id'), "
            "COALESCE((SELECT MAX(event_id) FROM model_events), 0) + 1, false)"
        )
    )
