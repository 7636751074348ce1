"""The server's registered workflows: every version kept (by content hash) in the store's
``workflow_versions`` table, each loadable with ``load_workflow`` semantics, and every
registration recorded (``workflow_registrations``: who, when, the hash of what it named).

A workflow posted as text (with its bundle of files, if any) is written to
``<workflows_dir>/<name>/<version>/`` and its relative paths resolve there; one registered by
a path under a ``--workflow-root`` keeps its own folder. Either may name files only inside
those folders (server/confine.py). Preparing a registration (reading, writing the bundle,
validating) blocks: the service runs it off the event loop; the store writes stay on it.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from relayflow.errors import Problem, SpecError, StoreError
from relayflow.schema.workflow import Workflow
from relayflow.server import confine
from relayflow.spec.loader import load_spec_text
from relayflow.store.protocol import WorkflowCatalogStore
from relayflow.store.records import WorkflowVersionRecord

Source = Literal["yaml", "bundle", "path"]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A registration that validated, not yet kept: ``staging`` (a text's folder) moves into
    place on ``commit``; ``runs_code`` says whether it needs the ``register_code`` right."""

    workflow: Workflow
    text: str
    source: Source
    files_hash: str
    runs_code: bool
    staging: Path | None


class Catalog:
    def __init__(
        self, store: WorkflowCatalogStore, workflows_dir: Path, roots: Sequence[Path] = ()
    ) -> None:
        self.store = store
        self.dir = workflows_dir
        self.roots = tuple(roots)
        self._loaded: dict[tuple[str, str], Workflow] = {}

    # ---- preparing (blocking: off the event loop) --------------------------------------------

    def prepare_text(
        self, name: str, text: str, files: Mapping[str, bytes] | None = None
    ) -> Prepared:
        """Validate ``text`` (and its bundle) as workflow ``name`` in a staging folder of its
        own; SpecError lists the problems, a file it names outside its folder and the roots
        among them."""
        files = confine.bundle_bytes(files or {})
        staging = self.dir / name / f".staging-{secrets.token_hex(8)}"
        try:
            staging.mkdir(parents=True)
            (staging / confine.BUNDLE_YAML).write_text(text, encoding="utf-8")
            confine.write_bundle(staging, files)
            workflow = self._load_text(name, text, staging)
            confine.confine(workflow, (Path(staging).resolve(), *self.roots), f"{name}.yaml")
        except SpecError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise SpecError([_shown_as(p, staging, name) for p in exc.problems]) from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if files:
            files_hash = confine.manifest_hash(text, files)
            workflow = dataclasses.replace(workflow, version=files_hash[:12])
        else:
            files_hash = confine.referenced_hash(text, workflow)
        return Prepared(
            workflow,
            text,
            "bundle" if files else "yaml",
            files_hash,
            confine.runs_code(workflow),
            staging,
        )

    def prepare_path(self, path: str, name: str | None) -> Prepared:
        """Read the workflow file at ``path`` (a regular ``.yaml`` under a root, bounded) and
        validate it where it is; problems never quote the file's values."""
        real, text = confine.read_workflow_file(path, self.roots)
        try:
            workflow = load_spec_text(text, real)
            workflow = self._named(workflow, name or workflow.name, str(real))
            confine.confine(workflow, self.roots, str(real))
        except SpecError as exc:
            raise SpecError([_quiet(p) for p in exc.problems]) from None
        return Prepared(
            workflow,
            text,
            "path",
            confine.referenced_hash(text, workflow),
            confine.runs_code(workflow),
            None,
        )

    def commit(self, prepared: Prepared) -> Workflow:
        """Move a text's staging folder to ``<name>/<version>/`` (kept as it is when that
        version is there already) and load the workflow from its final place."""
        if prepared.staging is None:
            return prepared.workflow
        workflow = prepared.workflow
        final = self.dir / workflow.name / workflow.version
        try:
            prepared.staging.rename(final)
        except OSError:
            if not final.is_dir():
                shutil.rmtree(prepared.staging, ignore_errors=True)
                raise StoreError(f"cannot keep the workflow's files under {final}") from None
            shutil.rmtree(prepared.staging, ignore_errors=True)  # the same content is there
        loaded = load_spec_text(prepared.text, final / confine.BUNDLE_YAML)
        return dataclasses.replace(loaded, name=workflow.name, version=workflow.version)

    def discard(self, prepared: Prepared) -> None:
        if prepared.staging is not None:
            shutil.rmtree(prepared.staging, ignore_errors=True)

    def _load_text(self, name: str, text: str, folder: Path) -> Workflow:
        workflow = load_spec_text(text, folder / confine.BUNDLE_YAML)
        return self._named(workflow, name, f"{name}.yaml")

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

    # ---- keeping (the store: on the event loop) ------------------------------------------------

    def keep(
        self, prepared: Prepared, workflow: Workflow, by: str, token_id: str | None
    ) -> Workflow:
        """Record the version (once) and this registration (always), in one transaction."""
        key = (workflow.name, workflow.version)
        self.store.keep_workflow_version(
            WorkflowVersionRecord(
                name=workflow.name,
                version=workflow.version,
                file=str(workflow.file),
                text=prepared.text,
                registered_by=by,
                created=time.time(),
            ),
            token_id=token_id,
            source=prepared.source,
            files_hash=prepared.files_hash,
            runs_code=prepared.runs_code,
        )
        self._loaded[key] = workflow
        return workflow

    def registrations(self, name: str) -> list[dict[str, Any]]:
        """Every registration of ``name``, newest first."""
        return self.store.workflow_registrations(name)

    def names(self) -> list[str]:
        return self.store.workflow_names()

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of ``name``, newest first (empty: no such workflow)."""
        return self.store.workflow_versions(name)

    def load(self, name: str, version: str) -> Workflow | None:
        """The workflow of a registered version, loaded from its kept text (None: unknown)."""
        key = (name, version)
        if key in self._loaded:
            return self._loaded[key]
        row = self.store.workflow_version(name, version)
        if row is None:
            return None
        # the registered version: a bundle's hashes its files too, not only the text
        workflow = dataclasses.replace(
            load_spec_text(row.text, Path(row.file)), name=name, version=row.version
        )
        self._loaded[key] = workflow
        return workflow


def _shown_as(problem: Problem, staging: Path, name: str) -> Problem:
    """A problem of a posted text names the text (``name.yaml``) or the bundle's file by its
    relative path, not the server's staging copy."""
    file, folder = problem.file, str(staging) + "/"
    if file == folder + confine.BUNDLE_YAML:
        file = f"{name}.yaml"
    elif file.startswith(folder):
        file = file[len(folder) :]
    return dataclasses.replace(problem, file=file, message=problem.message.replace(folder, ""))


_GOT = re.compile(r"\s*\(got .*\)$", re.DOTALL)
_NOT_ALLOWED = re.compile(r"^.* is not allowed$", re.DOTALL)


def _quiet(problem: Problem) -> Problem:
    """A problem without the values it quotes: what a file on the server's disk holds is not
    the client's to read back in an error (``(got 'postgres://admin:…')``)."""
    message = _GOT.sub("", problem.message)
    message = _NOT_ALLOWED.sub("this value is not allowed", message)
    return dataclasses.replace(problem, message=message)
