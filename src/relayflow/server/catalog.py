"""The server's registered workflows: every version kept (by content hash) in the store's
``workflow_versions`` table, each loadable with ``load_workflow`` semantics.

A workflow posted as text is written to ``<workflows_dir>/<name>/<version>/workflow.yaml`` and
its relative paths resolve there; one registered by a path on the server's disk keeps its own
folder (scripts, templates, data beside it).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from relayflow.errors import Problem, SpecError, StoreError
from relayflow.spec.loader import Workflow, load_spec, load_spec_text
from relayflow.store import schema


class Catalog:
    def __init__(self, engine: Engine, workflows_dir: Path) -> None:
        self.engine = engine
        self.dir = workflows_dir
        self._loaded: dict[tuple[str, str], Workflow] = {}

    def register_text(self, name: str, text: str, by: str | None) -> Workflow:
        """Validate ``text`` as workflow ``name`` and keep it (SpecError lists its problems)."""
        import hashlib

        version = hashlib.sha256(text.encode()).hexdigest()[:12]
        file = self.dir / name / version / "workflow.yaml"
        try:
            workflow = load_spec_text(text, file)
        except SpecError as exc:
            raise SpecError(
                [_shown_as(p, str(file), f"{name}.yaml") for p in exc.problems]
            ) from None
        workflow = self._named(workflow, name, f"{name}.yaml")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
        return self._keep(workflow, text, by)

    def register_path(self, path: str, name: str | None, by: str | None) -> Workflow:
        """Load the workflow file at ``path`` on this machine and keep its current text."""
        file = Path(path).expanduser().absolute()
        workflow = load_spec(file)
        workflow = self._named(workflow, name or workflow.name, str(file))
        return self._keep(workflow, file.read_text(encoding="utf-8"), by)

    def _named(self, workflow: Workflow, name: str, shown: str) -> Workflow:
        declared = workflow.spec.name
        if declared is not None and declared != name:
            raise SpecError(
                [
                    Problem(
                        shown,
                        workflow.lines.line_of(("name",)),
                        "name",
                        f"the file names the workflow {declared!r}, registered as {name!r}",
                        f"register it as {declared!r} or change its `name:`",
                    )
                ]
            )
        return dataclasses.replace(workflow, name=name)

    def _keep(self, workflow: Workflow, text: str, by: str | None) -> Workflow:
        key = (workflow.name, workflow.version)
        t = schema.workflow_versions
        exists = self._read(select(t.c.version).where(t.c.name == key[0], t.c.version == key[1]))
        if not exists:
            self._write(
                t.insert().values(
                    name=key[0],
                    version=key[1],
                    file=str(workflow.file),
                    text=text,
                    registered_by=by,
                    created=time.time(),
                )
            )
        self._loaded[key] = workflow
        return workflow

    def names(self) -> list[str]:
        t = schema.workflow_versions
        return [r[0] for r in self._read(select(t.c.name).distinct().order_by(t.c.name))]

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of ``name``, newest first (empty: no such workflow)."""
        t = schema.workflow_versions
        q = (
            select(t.c.version, t.c.file, t.c.created, t.c.registered_by)
            .where(t.c.name == name)
            .order_by(t.c.created.desc())
        )
        return [dict(r._mapping) for r in self._read(q)]

    def load(self, name: str, version: str) -> Workflow | None:
        """The workflow of a registered version, loaded from its kept text (None: unknown)."""
        key = (name, version)
        if key in self._loaded:
            return self._loaded[key]
        t = schema.workflow_versions
        rows = self._read(select(t).where(t.c.name == name, t.c.version == version))
        if not rows:
            return None
        row = rows[0]
        workflow = dataclasses.replace(load_spec_text(row.text, Path(row.file)), name=name)
        self._loaded[key] = workflow
        return workflow

    def _read(self, query: Any) -> list[Any]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(query))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the workflow catalog: {exc}") from exc

    def _write(self, stmt: Any) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot write the workflow catalog: {exc}") from exc


def _shown_as(problem: Problem, real: str, shown: str) -> Problem:
    """A problem of a posted text names the text, not the server's copy of it."""
    if problem.file != real:
        return problem
    return dataclasses.replace(problem, file=shown)
