"""The model and prompt version registry: content-addressed versions in the run store's database,
their artifacts in a folder beside it, and the production version materialised where the
workflow reads it (the ``models:`` file, the prompt template) by write-then-rename."""

from __future__ import annotations

import builtins
import hashlib
import json
import re
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from relayflow.errors import Conflict, InputError, NotFound, StoreError
from relayflow.learn.storage import (
    default_artifacts,
    insert,
    open_engine,
    read,
    transaction,
    write_atomically,
)
from relayflow.store import registry_schema as tables

Kind = Literal["sklearn", "prompt"]
_SUFFIX: dict[str, str] = {"sklearn": ".joblib", "prompt": ".jinja"}
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

    @property
    def version(self) -> str:
        return content_version(self.content)


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """A registered version. ``artifact`` is the stored file (sklearn) or the prompt's text."""

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


class Registry:
    """Versions of models and prompts by name, in the store at ``url``. Use as a context
    manager or call `close`."""

    def __init__(self, url: str, *, artifacts: Path | None = None) -> None:
        self.engine = open_engine(url, create=True)
        self.artifacts = artifacts or default_artifacts(self.engine)

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    # ---- versions -----------------------------------------------------------------------

    def artifact_path(self, name: str, version: str, kind: str) -> Path:
        return self.artifacts / _UNSAFE.sub("_", name) / f"{version}{_SUFFIX.get(kind, '.bin')}"

    def register(self, candidate: Candidate) -> ModelVersion:
        """Store a version (its artifact and card beside it); the same bytes registered again
        give the existing version, unchanged."""
        version = candidate.version
        existing = self._find(candidate.name, version)
        if existing is not None:
            return existing
        path = self.artifact_path(candidate.name, version, candidate.kind)
        card = {**candidate.card, "name": candidate.name, "version": version}
        try:
            write_atomically(path, candidate.content)
            write_atomically(path.with_suffix(".card.json"), _json(card, indent=2).encode())
        except OSError as exc:
            raise StoreError(f"cannot write the artifact {path}: {exc}") from exc
        artifact = candidate.content.decode("utf-8") if candidate.kind == "prompt" else str(path)
        row = {
            "name": candidate.name,
            "version": version,
            "kind": candidate.kind,
            "artifact": artifact,
            "target": None if candidate.target is None else str(candidate.target),
            "parent": candidate.parent,
            "status": "candidate",
            "metrics": _json(candidate.metrics),
            "card": _json(card),
            "created": time.time(),
        }
        with self._begin() as conn:
            conn.execute(insert(self.engine, tables.model_versions).on_conflict_do_nothing(), row)
        found = self._find(candidate.name, version)
        assert found is not None  # noqa: S101 - invariant: the row was just written
        return found

    def get(self, name: str, version: str) -> ModelVersion:
        """The version of ``name`` whose id is ``version`` or starts with it."""
        t = tables.model_versions
        prefix = t.c.version.startswith(version, autoescape=True)
        rows = self._rows(select(t).where(t.c.name == name, prefix))
        exact = [r for r in rows if r.version == version]
        if exact or len(rows) == 1:
            return (exact or rows)[0]
        if not rows:
            known = self.list(name)
            hint = (
                f"`relayflow models list {name}` shows its versions"
                if known
                else "`relayflow models list` shows the names"
            )
            raise NotFound(f"no version {version!r} of {name!r} in the registry: {hint}")
        raise InputError(
            f"{version!r} matches {len(rows)} versions of {name!r}: give more characters"
        )

    def production(self, name: str) -> ModelVersion | None:
        t = tables.model_versions
        rows = self._rows(select(t).where(t.c.name == name, t.c.status == "production"))
        return rows[0] if rows else None

    def list(self, name: str | None = None) -> builtins.list[ModelVersion]:
        """Every version (of ``name``), newest first within each name."""
        t = tables.model_versions
        query = select(t).order_by(t.c.name, t.c.created.desc())
        return self._rows(query if name is None else query.where(t.c.name == name))

    def events(self, name: str) -> builtins.list[tuple[str, str, str, float]]:
        """``(action, version, note, ts)`` of every change of ``name``, oldest first."""
        t = tables.model_events
        query = select(t).where(t.c.name == name).order_by(t.c.event_id)
        return [(r.action, r.version, r.note, r.ts) for r in self._select(query)]

    # ---- labels ---------------------------------------------------------------------------

    def labels(self, name: str | None = None) -> dict[tuple[str, str], str]:
        """``{(name, label): version}`` of every label (of ``name``), ``production`` included:
        that label is the production status, so retraining and `promote` move it too."""
        t, v = tables.version_labels, tables.model_versions
        query = select(t.c.name, t.c.label, t.c.version)
        production = select(v.c.name, v.c.version).where(v.c.status == "production")
        if name is not None:
            query, production = query.where(t.c.name == name), production.where(v.c.name == name)
        found = {(r.name, r.label): r.version for r in self._select(query)}
        found.update({(r.name, PRODUCTION): r.version for r in self._select(production)})
        return found

    def labelled(self, name: str, label: str) -> ModelVersion:
        """The version of ``name`` that ``label`` points at."""
        version = self.labels(name).get((name, label))
        if version is None:
            known = sorted(lbl for _n, lbl in self.labels(name)) or ["none"]
            raise NotFound(
                f"{name!r} has no version labelled {label!r} (its labels: {', '.join(known)}) "
                f"— set it with `relayflow prompts label {name}@VERSION {label}`"
            )
        return self.get(name, version)

    def set_label(self, name: str, label: str, version: str, *, note: str = "") -> ModelVersion:
        """Point ``label`` of ``name`` at ``version`` (moved from where it was). Labelling
        ``production`` promotes: the version is written where the workflow reads it."""
        check_label(label)
        chosen = self.get(name, version)
        if label == PRODUCTION:
            return self.promote(name, chosen.version, note=note or "labelled production")
        ins = insert(self.engine, tables.version_labels)
        stmt = ins.on_conflict_do_update(
            index_elements=["name", "label"],
            set_={"version": ins.excluded.version, "updated": ins.excluded.updated},
        )
        with self._begin() as conn:
            conn.execute(
                stmt,
                {"name": name, "label": label, "version": chosen.version, "updated": time.time()},
            )
            self._event(conn, name, chosen.version, "label", note or label)
        return chosen

    def remove_label(self, name: str, label: str) -> None:
        """Take ``label`` off ``name`` (``production`` cannot be removed, only moved)."""
        if label == PRODUCTION:
            raise Conflict(
                "the production label cannot be removed, only moved (label another version, or "
                "`relayflow models rollback`)"
            )
        t = tables.version_labels
        with self._begin() as conn:
            gone = conn.execute(delete(t).where(t.c.name == name, t.c.label == label)).rowcount
        if not gone:
            raise NotFound(f"{name!r} has no label {label!r}")

    def with_prefix(self, prefix: str, kind: str | None = None) -> builtins.list[ModelVersion]:
        """Every version (of any name) whose id starts with ``prefix``."""
        t = tables.model_versions
        query = select(t).where(t.c.version.startswith(prefix, autoescape=True))
        return self._rows(query if kind is None else query.where(t.c.kind == kind))

    # ---- production -----------------------------------------------------------------------

    def promote(self, name: str, version: str, *, note: str = "") -> ModelVersion:
        """Make ``version`` production: materialise it, archive the one it replaces."""
        chosen = self.get(name, version)
        current = self.production(name)
        if current is not None and current.version == chosen.version:
            return chosen
        self._materialise(chosen, current)
        self._set_production(chosen, current, "promote", note)
        return self.get(name, chosen.version)

    def reject(self, name: str, version: str, *, note: str = "") -> ModelVersion:
        """Mark a candidate rejected; production is left as it is."""
        chosen = self.get(name, version)
        if chosen.status == "production":
            raise Conflict(
                f"{name} {chosen.version} is in production: roll it back instead of rejecting it"
            )
        t = tables.model_versions
        with self._begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.name == name, t.c.version == chosen.version)
                .values(status="rejected")
            )
            self._event(conn, name, chosen.version, "reject", note)
        return self.get(name, chosen.version)

    def rollback(self, name: str, *, note: str = "") -> ModelVersion:
        """Put the production version before the current one back (materialised again)."""
        stack = self._stack(name)
        if len(stack) < 2:
            raise Conflict(
                f"{name!r} has no earlier production version to roll back to "
                "(`relayflow models list` shows its history)"
            )
        current = self.production(name)
        previous = self.get(name, stack[-2])
        self._materialise(previous, current)
        self._set_production(previous, current, "rollback", note)
        return self.get(name, previous.version)

    def adopt(
        self,
        name: str,
        kind: Kind,
        target: Path | None,
        *,
        content: bytes | None = None,
        card: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Register what the workflow reads now (the file at ``target``, or ``content`` for an
        inline prompt) and make it the production version if it is not already: a model
        trained outside the registry is adopted, with the previous production as its parent."""
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
        current = self.production(name)
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
            )
        )
        self._set_production(adopted, current, "adopt", f"found at {target or 'the workflow'}")
        return self.get(name, adopted.version)

    def _stack(self, name: str) -> builtins.list[str]:
        """The production versions in order, replayed from the events (rollback pops)."""
        stack: builtins.list[str] = []
        for action, version, _note, _ts in self.events(name):
            if action in ("promote", "adopt"):
                stack.append(version)
            elif action == "rollback" and stack:
                stack.pop()
        return stack

    def _materialise(self, chosen: ModelVersion, current: ModelVersion | None) -> None:
        target = chosen.target or (current.target if current is not None else None)
        if target is None:
            return  # an inline prompt: the registry is the only place it lives
        if chosen.kind == "prompt":
            content = chosen.artifact.encode("utf-8")
        else:
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
        t = tables.model_versions
        with self._begin() as conn:
            if current is not None:
                conn.execute(
                    update(t)
                    .where(t.c.name == current.name, t.c.version == current.version)
                    .values(status="archived")
                )
            conn.execute(
                update(t)
                .where(t.c.name == chosen.name, t.c.version == chosen.version)
                .values(status="production")
            )
            self._event(conn, chosen.name, chosen.version, action, note)

    # ---- plumbing ---------------------------------------------------------------------------

    def _find(self, name: str, version: str) -> ModelVersion | None:
        t = tables.model_versions
        rows = self._rows(select(t).where(t.c.name == name, t.c.version == version))
        return rows[0] if rows else None

    def _event(self, conn: Connection, name: str, version: str, action: str, note: str) -> None:
        conn.execute(
            tables.model_events.insert().values(
                name=name, version=version, action=action, note=note, ts=time.time()
            )
        )

    def _begin(self) -> AbstractContextManager[Connection]:
        return transaction(self.engine, "the registry")

    def _select(self, query: Any) -> builtins.list[Any]:
        return read(self.engine, query, "the registry")

    def _rows(self, query: Any) -> builtins.list[ModelVersion]:
        return [
            ModelVersion(
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
            for r in self._select(query)
        ]


def _json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, default=str, indent=indent, sort_keys=indent is not None)
