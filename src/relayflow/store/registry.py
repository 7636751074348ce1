"""The model and prompt version registry: content-addressed versions in the run store's database
(store/versions.py keeps the rows), their artifacts in a folder beside it, and the production
version materialised where the workflow reads it (the ``models:`` file, the prompt template) by
write-then-rename. Each workflow keeps its own history of each name (a ``models:`` alias, an
inference step): two workflows with a step of the same name do not share one."""

from __future__ import annotations

import builtins
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from relayflow.errors import Conflict, InputError, NotFound, StoreError
from relayflow.store.artifacts import default_artifacts, write_atomically
from relayflow.store.database import open_database
from relayflow.store.versions import (
    UNKNOWN_WORKFLOW,
    LabelRow,
    ModelVersion,
    VersionEvent,
    VersionTables,
)

__all__ = [
    "PRODUCTION",
    "UNKNOWN_WORKFLOW",
    "Candidate",
    "Kind",
    "ModelVersion",
    "Registry",
    "check_label",
    "content_version",
]

Kind = Literal["sklearn", "prompt", "learned"]
_SUFFIX: dict[str, str] = {"sklearn": ".joblib", "prompt": ".jinja", "learned": ".skops"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: the label that is the production status (moved by promote, rollback and retraining)
PRODUCTION = "production"
_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")


def check_label(label: str) -> str:
    """``label`` if it is a valid label name (a letter, then letters, digits, ``. _ -``)."""
    if not _LABEL.fullmatch(label):
        raise InputError(
            f"invalid label {label!r}: start with a letter, then letters, digits, '.', '_' or "
            "'-' (64 at most), e.g. v3, staging, production"
        )
    return label


def content_version(content: bytes) -> str:
    """The version of an artifact: the first 12 hex digits of the sha256 of its bytes."""
    return hashlib.sha256(content).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A version to register: its bytes (a joblib file, a prompt's UTF-8 text) and metadata."""

    name: str
    kind: Kind
    content: bytes
    target: Path | None = None
    parent: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    card: Mapping[str, Any] = field(default_factory=dict)
    #: the workflow whose history it joins; None: the registry's own
    workflow: str | None = None

    @property
    def version(self) -> str:
        return content_version(self.content)


class Registry:
    """Versions of models and prompts by workflow and name, in the store at ``url``. A registry
    opened for one ``workflow`` registers into and reads from that workflow's histories; one
    opened without reads every workflow's, and a name alone means the only workflow that has
    it. Use as a context manager or call `close`."""

    def __init__(
        self, url: str, *, workflow: str | None = None, artifacts: Path | None = None
    ) -> None:
        self.engine = open_database(url, create=True)
        self.tables = VersionTables(self.engine)
        self.workflow = workflow
        self.artifacts = artifacts or default_artifacts(self.engine)

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    # ---- which workflow -------------------------------------------------------------------

    def workflows(self, name: str | None = None, kind: str | None = None) -> builtins.list[str]:
        """The workflows that have versions (of ``name``, of ``kind``), sorted."""
        return self.tables.workflows(name, kind)

    def workflow_of(self, name: str, workflow: str | None = None) -> str:
        """The workflow whose history of ``name`` is meant: ``workflow``, else the registry's,
        else the only one that has ``name`` (an error names them when several do)."""
        chosen = workflow or self.workflow
        if chosen is not None:
            return chosen
        found = self.tables.workflows(name)
        if len(found) > 1:
            raise InputError(
                f"{name!r} is in {len(found)} workflows of the registry ({', '.join(found)}): "
                "name one with --workflow"
            )
        return found[0] if found else UNKNOWN_WORKFLOW

    def _writing_to(self, workflow: str | None, name: str) -> str:
        chosen = workflow or self.workflow
        if chosen is None:
            raise InputError(f"registering a version of {name!r} needs its workflow")
        return chosen

    # ---- versions -----------------------------------------------------------------------

    def artifact_path(self, workflow: str, name: str, version: str, kind: str) -> Path:
        folder = self.artifacts / _UNSAFE.sub("_", workflow) / _UNSAFE.sub("_", name)
        return folder / f"{version}{_SUFFIX.get(kind, '.bin')}"

    def register(self, candidate: Candidate) -> ModelVersion:
        """Store a version (its artifact and card beside it) in its workflow's history; the
        same bytes registered again give the existing version, unchanged."""
        workflow = self._writing_to(candidate.workflow, candidate.name)
        version = candidate.version
        existing = self.tables.find(workflow, candidate.name, version)
        if existing is not None:
            return existing
        path = self.artifact_path(workflow, candidate.name, version, candidate.kind)
        card = {**candidate.card, "name": candidate.name, "version": version}
        try:
            write_atomically(path, candidate.content)
            write_atomically(path.with_suffix(".card.json"), _json(card, indent=2).encode())
        except OSError as exc:
            raise StoreError(f"cannot write the artifact {path}: {exc}") from exc
        artifact = candidate.content.decode("utf-8") if candidate.kind == "prompt" else str(path)
        self.tables.insert(
            ModelVersion(
                workflow=workflow,
                name=candidate.name,
                version=version,
                kind=candidate.kind,
                artifact=artifact,
                target=None if candidate.target is None else str(candidate.target),
                parent=candidate.parent,
                status="candidate",
                metrics=candidate.metrics,
                card=card,
                created=time.time(),
            )
        )
        found = self.tables.find(workflow, candidate.name, version)
        assert found is not None  # noqa: S101 - invariant: the row was just written
        return found

    def get(self, name: str, version: str, *, workflow: str | None = None) -> ModelVersion:
        """The version of ``name`` whose id is ``version`` or starts with it."""
        scope = self.workflow_of(name, workflow)
        rows = self.tables.by_prefix(scope, name, version)
        exact = [r for r in rows if r.version == version]
        if exact or len(rows) == 1:
            return (exact or rows)[0]
        if not rows:
            known = self.list(name, workflow=scope)
            hint = (
                f"`relayflow models list {name}` shows its versions"
                if known
                else "`relayflow models list` shows the names"
            )
            raise NotFound(f"no version {version!r} of {name!r} in the registry: {hint}")
        raise InputError(
            f"{version!r} matches {len(rows)} versions of {name!r}: give more characters"
        )

    def production(self, name: str, *, workflow: str | None = None) -> ModelVersion | None:
        return self.tables.production(self.workflow_of(name, workflow), name)

    def list(
        self, name: str | None = None, *, workflow: str | None = None
    ) -> builtins.list[ModelVersion]:
        """Every version (of ``name``; of ``workflow``, else the registry's, else of every
        workflow), newest first within each name and workflow."""
        return self.tables.versions(workflow=workflow or self.workflow, name=name)

    def events(self, name: str, *, workflow: str | None = None) -> builtins.list[VersionEvent]:
        """``(action, version, note, ts)`` of every change of ``name``, oldest first."""
        return self.tables.events(self.workflow_of(name, workflow), name)

    # ---- labels ---------------------------------------------------------------------------

    def labels(
        self, name: str | None = None, *, workflow: str | None = None
    ) -> dict[tuple[str, str], str]:
        """``{(name, label): version}`` of every label (of ``name``), ``production`` included:
        that label is the production status, so retraining and `promote` move it too."""
        scope = self.workflow_of(name, workflow) if name is not None else workflow or self.workflow
        rows = self.tables.labels(workflow=scope, name=name)
        return {(r.name, r.label): r.version for r in rows}

    def all_labels(self) -> builtins.list[LabelRow]:
        """``(workflow, name, label, version)`` of every label in the registry's scope."""
        return self.tables.labels(workflow=self.workflow)

    def labelled(self, name: str, label: str, *, workflow: str | None = None) -> ModelVersion:
        """The version of ``name`` that ``label`` points at."""
        scope = self.workflow_of(name, workflow)
        found = self.labels(name, workflow=scope)
        version = found.get((name, label))
        if version is None:
            known = sorted(lbl for _n, lbl in found) or ["none"]
            raise NotFound(
                f"{name!r} has no version labelled {label!r} (its labels: {', '.join(known)}) "
                f"— set it with `relayflow prompts label {name}@VERSION {label}`"
            )
        return self.get(name, version, workflow=scope)

    def set_label(
        self, name: str, label: str, version: str, *, note: str = "", workflow: str | None = None
    ) -> ModelVersion:
        """Point ``label`` of ``name`` at ``version`` (moved from where it was). Labelling
        ``production`` promotes: the version is written where the workflow reads it."""
        check_label(label)
        scope = self.workflow_of(name, workflow)
        chosen = self.get(name, version, workflow=scope)
        if label == PRODUCTION:
            return self.promote(
                name, chosen.version, note=note or "labelled production", workflow=scope
            )
        self.tables.put_label(scope, name, label, chosen.version, note or label)
        return chosen

    def remove_label(self, name: str, label: str, *, workflow: str | None = None) -> None:
        """Take ``label`` off ``name`` (``production`` cannot be removed, only moved)."""
        if label == PRODUCTION:
            raise Conflict(
                "the production label cannot be removed, only moved (label another version, or "
                "`relayflow models rollback`)"
            )
        if not self.tables.delete_label(self.workflow_of(name, workflow), name, label):
            raise NotFound(f"{name!r} has no label {label!r}")

    def with_prefix(self, prefix: str, kind: str | None = None) -> builtins.list[ModelVersion]:
        """Every version (of any name, in the registry's scope) whose id starts with
        ``prefix``."""
        return self.tables.versions(workflow=self.workflow, kind=kind, prefix=prefix)

    # ---- production -----------------------------------------------------------------------

    def promote(
        self, name: str, version: str, *, note: str = "", workflow: str | None = None
    ) -> ModelVersion:
        """Make ``version`` production: materialise it, archive the one it replaces."""
        scope = self.workflow_of(name, workflow)
        chosen = self.get(name, version, workflow=scope)
        current = self.production(name, workflow=scope)
        if current is not None and current.version == chosen.version:
            return chosen
        self._materialise(chosen, current)
        self._set_production(chosen, current, "promote", note)
        return self.get(name, chosen.version, workflow=scope)

    def reject(
        self, name: str, version: str, *, note: str = "", workflow: str | None = None
    ) -> ModelVersion:
        """Mark a candidate rejected; production is left as it is."""
        scope = self.workflow_of(name, workflow)
        chosen = self.get(name, version, workflow=scope)
        if chosen.status == "production":
            raise Conflict(
                f"{name} {chosen.version} is in production: roll it back instead of rejecting it"
            )
        self.tables.set_status(scope, name, chosen.version, "rejected", "reject", note)
        return self.get(name, chosen.version, workflow=scope)

    def rollback(self, name: str, *, note: str = "", workflow: str | None = None) -> ModelVersion:
        """Put the production version before the current one back (materialised again)."""
        scope = self.workflow_of(name, workflow)
        stack = self._stack(scope, name)
        if len(stack) < 2:
            raise Conflict(
                f"{name!r} has no earlier production version to roll back to "
                "(`relayflow models list` shows its history)"
            )
        current = self.production(name, workflow=scope)
        previous = self.get(name, stack[-2], workflow=scope)
        self._materialise(previous, current)
        self._set_production(previous, current, "rollback", note)
        return self.get(name, previous.version, workflow=scope)

    def adopt(
        self,
        name: str,
        kind: Kind,
        target: Path | None,
        *,
        content: bytes | None = None,
        card: Mapping[str, Any] | None = None,
        workflow: str | None = None,
    ) -> ModelVersion:
        """Register what the workflow reads now (the file at ``target``, or ``content`` for an
        inline prompt) and make it the production version if it is not already: a model
        trained outside the registry is adopted, with the previous production as its parent."""
        scope = self._writing_to(workflow, name)
        if content is None:
            if target is None:
                raise InputError(f"adopting {name!r} needs a file or its content")
            try:
                content = target.read_bytes()
            except OSError as exc:
                raise InputError(
                    f"cannot read {target} to register it as {name!r}: {exc.strerror or exc} — "
                    "create it first (train the model, write the template)"
                ) from exc
        current = self.production(name, workflow=scope)
        version = content_version(content)
        if current is not None and current.version == version:
            return current
        adopted = self.register(
            Candidate(
                name,
                kind,
                content,
                target=target,
                parent=None if current is None else current.version,
                card={"source": f"adopted from {target or 'the workflow file'}", **(card or {})},
                workflow=scope,
            )
        )
        self._set_production(adopted, current, "adopt", f"found at {target or 'the workflow'}")
        return self.get(name, adopted.version, workflow=scope)

    def _stack(self, workflow: str, name: str) -> builtins.list[str]:
        """The production versions in order, replayed from the events (rollback pops)."""
        stack: builtins.list[str] = []
        for event in self.tables.events(workflow, name):
            if event.action in ("promote", "adopt"):
                stack.append(event.version)
            elif event.action == "rollback" and stack:
                stack.pop()
        return stack

    def _materialise(self, chosen: ModelVersion, current: ModelVersion | None) -> None:
        if chosen.kind == "prompt":
            # a prompt version lives in the registry only: the user's template file is theirs,
            # and a step runs a promoted version by pinning it (reply.jinja@production)
            return
        target = chosen.target or (current.target if current is not None else None)
        if target is None:
            return
        try:
            content = Path(chosen.artifact).read_bytes()
        except OSError as exc:
            raise StoreError(
                f"the artifact of {chosen.name} {chosen.version} is missing ({exc.strerror}):"
                f" {chosen.artifact}"
            ) from exc
        try:
            write_atomically(Path(target), content)
        except OSError as exc:
            raise StoreError(f"cannot write {target}: {exc.strerror or exc}") from exc

    def _set_production(
        self, chosen: ModelVersion, current: ModelVersion | None, action: str, note: str
    ) -> None:
        self.tables.set_production(
            chosen.workflow,
            chosen.name,
            chosen.version,
            None if current is None else current.version,
            action,
            note,
        )


def _json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, default=str, indent=indent, sort_keys=indent is not None)
