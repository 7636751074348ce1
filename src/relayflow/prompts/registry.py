"""Prompts in the version registry (learn/registry.py, one registry for models and prompts): the
template an inference step uses is registered by content hash when a run starts, with the
workflow that used it; labels pin versions, and ``file.jinja@label`` in the YAML reads one."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from relayflow.errors import InputError, NotFound, RelayflowError
from relayflow.learn.registry import PRODUCTION, Candidate, ModelVersion, Registry, check_label
from relayflow.learn.storage import insert, read, transaction
from relayflow.prompts.templates import split_pin
from relayflow.store import registry_schema as tables
from relayflow.store import schema

if TYPE_CHECKING:
    from relayflow.prompts.templates import PromptTemplate


def in_memory(url: str) -> bool:
    """A SQLite database in memory: another engine on it would see a different database."""
    return url in ("sqlite://", "sqlite:///:memory:", ":memory:") or "mode=memory" in url


def register_prompt(
    registry: Registry, name: str, template: PromptTemplate, workflow: str, *, used: bool = True
) -> ModelVersion:
    """Register ``template`` as a version of the prompt ``name`` (the inference step, as
    retraining names it) and record that ``workflow`` used it now (unless not ``used``: a
    pinned step's file is registered so that it can be labelled, but the step runs the pin)."""
    version = registry.register(
        Candidate(
            name,
            "prompt",
            template.source.encode("utf-8"),
            target=None if template.path is None else template.path.resolve(),
            card={"source": f"seen in workflow {workflow}"},
        )
    )
    if not used:
        return version
    now = time.time()
    ins = insert(registry.engine, tables.prompt_uses)
    stmt = ins.on_conflict_do_update(
        index_elements=["name", "version", "workflow"], set_={"last_seen": ins.excluded.last_seen}
    )
    row = {"name": name, "version": version.version, "workflow": workflow}
    with transaction(registry.engine, "the registry") as conn:
        conn.execute(stmt, {**row, "first_seen": now, "last_seen": now})
    return version


def pinned_source(registry: Registry, name: str, label: str, path: Path) -> str:
    """The stored text of the version of ``name`` labelled ``label`` (a pinned template)."""
    try:
        version = registry.labelled(name, label)
    except RelayflowError as exc:
        raise NotFound(f"prompt_template {path}@{label}: {exc}") from None
    return version.artifact


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One prompt version as ``relayflow prompts list`` shows it."""

    name: str
    version: str
    template: str | None
    labels: tuple[str, ...]
    first_seen: float
    workflows: tuple[str, ...]
    runs: int
    status: str


def prompt_versions(registry: Registry, names: Sequence[str] | None = None) -> list[PromptVersion]:
    """Every prompt version (of ``names``), newest first within each name, with its labels,
    the workflows that used it and the number of runs whose step ran it."""
    versions = [v for v in registry.list() if v.kind == "prompt"]
    if names is not None:
        versions = [v for v in versions if v.name in names]
    labels: dict[tuple[str, str], list[str]] = {}
    for (name, label), version in sorted(registry.labels().items()):
        labels.setdefault((name, version), []).append(label)
    uses: dict[tuple[str, str], list[str]] = {}
    u = tables.prompt_uses
    for row in read(
        registry.engine, select(u.c.name, u.c.version, u.c.workflow).order_by(u.c.workflow)
    ):
        uses.setdefault((row.name, row.version), []).append(row.workflow)
    return [
        PromptVersion(
            v.name,
            v.version,
            v.target,
            tuple(labels.get((v.name, v.version), ())),
            v.created,
            tuple(uses.get((v.name, v.version), ())),
            run_count(registry, v.name, v.version),
            v.status,
        )
        for v in versions
    ]


def run_count(registry: Registry, name: str, version: str) -> int:
    """Runs whose step ``name`` ran template ``version`` (the step's versions in the store)."""
    s = schema.steps
    # versions are compact JSON (store/statements.py); a version is hex, so LIKE needs no escape
    query = select(func.count(func.distinct(s.c.run_id))).where(
        s.c.step == name, s.c.versions.like(f'%"template":"{version}"%')
    )
    rows = read(registry.engine, query, "the run store")
    return int(rows[0][0]) if rows else 0


def resolve(registry: Registry, ref: str) -> ModelVersion:
    """The prompt version that ``ref`` names: ``NAME@LABEL`` or ``NAME@HASH`` (NAME: the
    step, or its template file), a label that one prompt has, a hash (prefix), or a NAME or
    template file alone (its production version, else its newest)."""
    if "@" in ref:
        owner, _, what = ref.rpartition("@")
        names = prompt_names(registry, owner)
        found = [v for name in names for v in _by_label_or_hash(registry, name, what)]
        if not found:
            raise NotFound(
                f"{owner!r} has no version or label {what!r}: `relayflow prompts list` shows them"
            )
        return _one(found, ref)
    labelled = [
        (name, version)
        for (name, label), version in registry.labels().items()
        if label == ref and _is_prompt(registry, name)
    ]
    if labelled:
        if len(labelled) > 1:
            owners = ", ".join(sorted(name for name, _v in labelled))
            raise InputError(
                f"label {ref!r} is on {len(labelled)} prompts ({owners}): write NAME@{ref}"
            )
        return registry.get(*labelled[0])
    by_hash = registry.with_prefix(ref, "prompt") if re.fullmatch(r"[0-9a-f]+", ref) else []
    if by_hash:
        return _one(by_hash, ref)
    names = prompt_names(registry, ref, missing_ok=True)
    if names:
        versions = [registry.production(n) or registry.list(n)[0] for n in names]
        return _one(versions, ref)
    raise NotFound(
        f"no prompt version, label or name {ref!r} in the registry: `relayflow prompts list` "
        "shows them"
    )


def prompt_names(registry: Registry, what: str, *, missing_ok: bool = False) -> list[str]:
    """The registry names a step name or a template file stands for."""
    prompts = [v for v in registry.list() if v.kind == "prompt"]
    if any(v.name == what for v in prompts):
        return [what]
    path = str(Path(what).expanduser().resolve())
    names = sorted({v.name for v in prompts if v.target == path})
    if not names and not missing_ok:
        raise NotFound(
            f"no prompt {what!r} in the registry (neither a step name nor a registered template "
            "file): run the workflow, or `relayflow prompts list WORKFLOW` to register its "
            "templates"
        )
    return names


def move_label(registry: Registry, ref: str, label: str) -> ModelVersion:
    """Point ``label`` at the version ``ref`` names. A template file stands for the version
    its content is now (which must be registered: the workflow ran, or was listed)."""
    check_label(label)
    path = Path(ref).expanduser()
    if "@" not in ref and path.is_file():
        from relayflow.learn.registry import content_version

        version = content_version(path.read_bytes())
        names = prompt_names(registry, ref)
        chosen = [v for name in names for v in registry.list(name) if v.version == version]
        if not chosen:
            raise NotFound(
                f"the current text of {ref} ({version}) is not registered: run the workflow, or "
                "`relayflow prompts list WORKFLOW` to register its templates"
            )
        target = _one(chosen, ref)
    elif "@" not in ref and _is_prompt(registry, ref):
        target = registry.list(ref)[0]  # a step name: the version seen last
    else:
        target = resolve(registry, ref)
    return registry.set_label(target.name, label, target.version, note=f"labelled {label}")


def _by_label_or_hash(registry: Registry, name: str, what: str) -> list[ModelVersion]:
    version = registry.labels(name).get((name, what))
    if version is not None:
        return [registry.get(name, version)]
    return [v for v in registry.list(name) if v.version.startswith(what)]


def _is_prompt(registry: Registry, name: str) -> bool:
    return any(v.kind == "prompt" for v in registry.list(name))


def _one(found: Sequence[ModelVersion], ref: str) -> ModelVersion:
    if len(found) == 1:
        return found[0]
    which = ", ".join(f"{v.name}@{v.version}" for v in found[:5])
    raise InputError(f"{ref!r} matches {len(found)} prompt versions ({which}): be more precise")


__all__ = [
    "PRODUCTION",
    "PromptVersion",
    "in_memory",
    "move_label",
    "pinned_source",
    "prompt_names",
    "prompt_versions",
    "register_prompt",
    "resolve",
    "run_count",
    "split_pin",
]
