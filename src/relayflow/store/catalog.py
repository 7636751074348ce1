"""The workflow catalog's repository (a server's registered workflows): every version kept
once by content hash (``workflow_versions``), every registration recorded
(``workflow_registrations``)."""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlalchemy import select

from relayflow.store import schema
from relayflow.store.reads import StoreReads
from relayflow.store.records import WorkflowVersionRecord


class CatalogQueries(StoreReads):
    def keep_workflow_version(
        self,
        version: WorkflowVersionRecord,
        *,
        token_id: str | None,
        source: str,
        files_hash: str,
        runs_code: bool,
    ) -> None:
        """Record the version (once: the first registration's row stays) and this
        registration (always), in one transaction."""
        t = schema.workflow_versions
        now = time.time()
        with self._transaction("the workflow catalog") as conn:
            exists = conn.execute(
                select(t.c.version).where(t.c.name == version.name, t.c.version == version.version)
            ).first()
            if exists is None:
                conn.execute(
                    t.insert().values(
                        name=version.name,
                        version=version.version,
                        file=version.file,
                        text=version.text,
                        registered_by=version.registered_by,
                        created=version.created,
                    )
                )
            conn.execute(
                schema.workflow_registrations.insert().values(
                    registration_id=secrets.token_hex(8),
                    workflow=version.name,
                    version=version.version,
                    token_id=token_id,
                    registered_by=version.registered_by,
                    ts=now,
                    source=source,
                    files_hash=files_hash,
                    runs_code=int(runs_code),
                )
            )

    def workflow_registrations(self, name: str) -> list[dict[str, Any]]:
        """Every registration of ``name``, newest first."""
        t = schema.workflow_registrations
        q = select(t).where(t.c.workflow == name).order_by(t.c.ts.desc())
        return [{**r._mapping, "runs_code": bool(r.runs_code)} for r in self.select_committed(q)]

    def workflow_names(self) -> list[str]:
        t = schema.workflow_versions
        return [r[0] for r in self.select_committed(select(t.c.name).distinct().order_by(t.c.name))]

    def workflow_versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of ``name`` (``version``, ``file``, ``created``, ``registered_by``),
        newest first; empty: no such workflow."""
        t = schema.workflow_versions
        q = (
            select(t.c.version, t.c.file, t.c.created, t.c.registered_by)
            .where(t.c.name == name)
            .order_by(t.c.created.desc())
        )
        return [dict(r._mapping) for r in self.select_committed(q)]

    def workflow_version(self, name: str, version: str) -> WorkflowVersionRecord | None:
        t = schema.workflow_versions
        rows = self.select_committed(select(t).where(t.c.name == name, t.c.version == version))
        return WorkflowVersionRecord(**rows[0]._mapping) if rows else None
