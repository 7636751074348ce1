"""The version registry's tables: model and prompt versions keyed by (workflow, name, version),
their labels, the history of production changes, and which workflow used which prompt version.
store/registry.py decides what to register and promote; this module only keeps the rows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from relayflow.errors import StoreError
from relayflow.store import registry_schema as tables
from relayflow.store import schema

__all__ = [
    "UNKNOWN_WORKFLOW",
    "LabelRow",
    "ModelVersion",
    "PromptUse",
    "VersionEvent",
    "VersionTables",
]

#: the workflow of versions whose workflow is not known: registered before versions were kept
#: per workflow and used by several (or none), or by a step that ran outside a workflow
UNKNOWN_WORKFLOW = "-"


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """A registered version of ``name`` (a ``models:`` alias or an inference step) in
    ``workflow``. ``artifact`` is the stored file (sklearn) or the prompt's text."""

    workflow: str
    name: str
    version: str
    kind: str
    artifact: str
    target: str | None
    parent: str | None
    status: str
    metrics: Mapping[str, Any]
    card: Mapping[str, Any]
    created: float


class VersionEvent(NamedTuple):
    """One change of a name's versions: promote, adopt, rollback, reject, label."""

    action: str
    version: str
    note: str
    ts: float


class LabelRow(NamedTuple):
    workflow: str
    name: str
    label: str
    version: str


class PromptUse(NamedTuple):
    """A workflow that ran a prompt version of ``name``, first and last seen."""

    name: str
    version: str
    workflow: str
    first_seen: float
    last_seen: float


class VersionTables:
    """The registry's rows in the database at ``engine``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ---- versions -------------------------------------------------------------------------

    def insert(self, version: ModelVersion) -> None:
        """Store ``version`` unless its (workflow, name, version) is there already."""
        row = {
            "workflow": version.workflow,
            "name": version.name,
            "version": version.version,
            "kind": version.kind,
            "artifact": version.artifact,
            "target": version.target,
            "parent": version.parent,
            "status": version.status,
            "metrics": _json(version.metrics),
            "card": _json(version.card),
            "created": version.created,
        }
        with self._begin() as conn:
            conn.execute(self._insert(tables.model_versions).on_conflict_do_nothing(), row)

    def find(self, workflow: str, name: str, version: str) -> ModelVersion | None:
        t = tables.model_versions
        rows = self._versions(select(t).where(*_of(t, workflow, name), t.c.version == version))
        return rows[0] if rows else None

    def by_prefix(self, workflow: str, name: str, prefix: str) -> list[ModelVersion]:
        t = tables.model_versions
        starts = t.c.version.startswith(prefix, autoescape=True)
        return self._versions(select(t).where(*_of(t, workflow, name), starts))

    def production(self, workflow: str, name: str) -> ModelVersion | None:
        t = tables.model_versions
        query = select(t).where(*_of(t, workflow, name), t.c.status == "production")
        rows = self._versions(query)
        return rows[0] if rows else None

    def versions(
        self,
        *,
        workflow: str | None = None,
        name: str | None = None,
        kind: str | None = None,
        prefix: str | None = None,
    ) -> list[ModelVersion]:
        """Every version (of ``workflow``, ``name``, ``kind``, whose id starts with ``prefix``),
        by name and workflow, newest first within each."""
        t = tables.model_versions
        query = select(t).order_by(t.c.name, t.c.workflow, t.c.created.desc())
        if workflow is not None:
            query = query.where(t.c.workflow == workflow)
        if name is not None:
            query = query.where(t.c.name == name)
        if kind is not None:
            query = query.where(t.c.kind == kind)
        if prefix is not None:
            query = query.where(t.c.version.startswith(prefix, autoescape=True))
        return self._versions(query)

    def workflows(self, name: str | None = None, kind: str | None = None) -> list[str]:
        """The workflows that have versions (of ``name``, of ``kind``), sorted."""
        t = tables.model_versions
        query = select(t.c.workflow).distinct().order_by(t.c.workflow)
        if name is not None:
            query = query.where(t.c.name == name)
        if kind is not None:
            query = query.where(t.c.kind == kind)
        return [row.workflow for row in self._read(query)]

    def set_status(
        self, workflow: str, name: str, version: str, status: str, action: str, note: str
    ) -> None:
        """Give one version ``status`` and record why."""
        t = tables.model_versions
        with self._begin() as conn:
            conn.execute(
                update(t)
                .where(*_of(t, workflow, name), t.c.version == version)
                .values(status=status)
            )
            self._event(conn, workflow, name, version, action, note)

    def set_production(
        self,
        workflow: str,
        name: str,
        chosen: str,
        current: str | None,
        action: str,
        note: str,
    ) -> None:
        """Make ``chosen`` the production version, archiving ``current``, in one transaction."""
        t = tables.model_versions
        with self._begin() as conn:
            if current is not None:
                conn.execute(
                    update(t)
                    .where(*_of(t, workflow, name), t.c.version == current)
                    .values(status="archived")
                )
            conn.execute(
                update(t)
                .where(*_of(t, workflow, name), t.c.version == chosen)
                .values(status="production")
            )
            self._event(conn, workflow, name, chosen, action, note)

    def events(self, workflow: str, name: str) -> list[VersionEvent]:
        """Every change of ``name`` in ``workflow``, oldest first."""
        t = tables.model_events
        query = select(t).where(*_of(t, workflow, name)).order_by(t.c.event_id)
        return [VersionEvent(r.action, r.version, r.note, r.ts) for r in self._read(query)]

    # ---- labels ---------------------------------------------------------------------------

    def labels(self, *, workflow: str | None = None, name: str | None = None) -> list[LabelRow]:
        """Every label (of ``workflow``, ``name``), the production status included as the
        label ``production``."""
        t, v = tables.version_labels, tables.model_versions
        query = select(t.c.workflow, t.c.name, t.c.label, t.c.version)
        production = select(v.c.workflow, v.c.name, v.c.version).where(v.c.status == "production")
        if workflow is not None:
            query = query.where(t.c.workflow == workflow)
            production = production.where(v.c.workflow == workflow)
        if name is not None:
            query, production = query.where(t.c.name == name), production.where(v.c.name == name)
        found = [LabelRow(r.workflow, r.name, r.label, r.version) for r in self._read(query)]
        found += [
            LabelRow(r.workflow, r.name, "production", r.version) for r in self._read(production)
        ]
        return found

    def put_label(self, workflow: str, name: str, label: str, version: str, note: str) -> None:
        """Point ``label`` at ``version`` (moved from where it was) and record the move."""
        ins = self._insert(tables.version_labels)
        stmt = ins.on_conflict_do_update(
            index_elements=["workflow", "name", "label"],
            set_={"version": ins.excluded.version, "updated": ins.excluded.updated},
        )
        row = {"workflow": workflow, "name": name, "label": label, "version": version}
        with self._begin() as conn:
            conn.execute(stmt, {**row, "updated": time.time()})
            self._event(conn, workflow, name, version, "label", note)

    def delete_label(self, workflow: str, name: str, label: str) -> bool:
        """Take ``label`` off; whether it was there."""
        t = tables.version_labels
        with self._begin() as conn:
            query = delete(t).where(*_of(t, workflow, name), t.c.label == label)
            return bool(conn.execute(query).rowcount)

    # ---- prompt uses ----------------------------------------------------------------------

    def record_use(self, workflow: str, name: str, version: str) -> None:
        """``workflow`` ran ``version`` of the prompt ``name`` now."""
        now = time.time()
        ins = self._insert(tables.prompt_uses)
        stmt = ins.on_conflict_do_update(
            index_elements=["name", "version", "workflow"],
            set_={"last_seen": ins.excluded.last_seen},
        )
        row = {"name": name, "version": version, "workflow": workflow}
        with self._begin() as conn:
            conn.execute(stmt, {**row, "first_seen": now, "last_seen": now})

    def uses(self) -> list[PromptUse]:
        """Every recorded use of a prompt version, by workflow."""
        u = tables.prompt_uses
        query = select(u).order_by(u.c.workflow)
        return [
            PromptUse(r.name, r.version, r.workflow, r.first_seen, r.last_seen)
            for r in self._read(query)
        ]

    def template_runs(self, workflow: str, step: str, version: str) -> int:
        """Runs of ``workflow`` whose ``step`` ran template ``version`` (the step's versions in
        the run store); every workflow's runs for `UNKNOWN_WORKFLOW`."""
        s, r = schema.steps, schema.runs
        # versions are compact JSON (store/statements.py); a version is hex, so LIKE needs no
        # escape
        query = select(func.count(func.distinct(s.c.run_id))).where(
            s.c.step == step, s.c.versions.like(f'%"template":"{version}"%')
        )
        if workflow != UNKNOWN_WORKFLOW:
            query = query.join(r, r.c.run_id == s.c.run_id).where(r.c.workflow == workflow)
        rows = self._read(query, "the run store")
        return int(rows[0][0]) if rows else 0

    # ---- plumbing -------------------------------------------------------------------------

    def _insert(self, table: Any) -> Any:
        """The dialect's INSERT, which has ``on_conflict_do_…``."""
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _event(
        self, conn: Connection, workflow: str, name: str, version: str, action: str, note: str
    ) -> None:
        conn.execute(
            tables.model_events.insert().values(
                workflow=workflow,
                name=name,
                version=version,
                action=action,
                note=note,
                ts=time.time(),
            )
        )

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot write the registry at {self.engine.url}: {exc}") from exc

    def _read(self, query: Any, what: str = "the registry") -> list[Any]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(query))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read {what} at {self.engine.url}: {exc}") from exc

    def _versions(self, query: Any) -> list[ModelVersion]:
        return [
            ModelVersion(
                workflow=r.workflow,
                name=r.name,
                version=r.version,
                kind=r.kind,
                artifact=r.artifact,
                target=r.target,
                parent=r.parent,
                status=r.status,
                metrics=json.loads(r.metrics),
                card=json.loads(r.card),
                created=r.created,
            )
            for r in self._read(query)
        ]


def _of(table: Any, workflow: str, name: str) -> tuple[Any, Any]:
    return table.c.workflow == workflow, table.c.name == name


def _json(value: Any) -> str:
    return json.dumps(value, default=str)
