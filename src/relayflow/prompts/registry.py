"""Prompts in the version registry (store/registry.py, one registry for models and prompts): the
template an inference step uses is registered by content hash when a run starts, in the history
of its workflow and step; labels pin versions, and ``file.jinja@label`` in the YAML reads one.

A prompt is named by its step, so a name alone is ambiguous when two workflows have a step of
that name: then the workflow must be named too (the registry's ``workflow``, ``--workflow``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from relayflow.errors import InputError, NotFound, RelayflowError
from relayflow.prompts.templates import split_pin
from relayflow.store.registry import (
    PRODUCTION,
    UNKNOWN_WORKFLOW,
    Candidate,
    ModelVersion,
    Registry,
    check_label,
    content_version,
)

if TYPE_CHECKING:
    from relayflow.prompts.templates import PromptTemplate

#: a prompt's key in the registry: (workflow, step)
PromptKey = tuple[str, str]


def register_prompt(
    registry: Registry, name: str, template: PromptTemplate, workflow: str, *, used: bool = True
) -> ModelVersion:
    """Register ``template`` as a version of the prompt of step ``name`` in ``workflow`` and
    record that the workflow used it now (unless not ``used``: a pinned step's file is
    registered so that it can be labelled, but the step runs the pin)."""
    version = registry.register(
        Candidate(
            name,
            "prompt",
            template.source.encode("utf-8"),
            target=None if template.path is None else template.path.resolve(),
            card={"source": f"seen in workflow {workflow}"},
            workflow=workflow,
        )
    )
    if used:
        registry.tables.record_use(workflow, name, version.version)
    return version


def pinned_source(
    registry: Registry, name: str, label: str, path: Path, workflow: str | None = None
) -> str:
    """The stored text of the version of ``name`` labelled ``label`` (a pinned template)."""
    try:
        version = registry.labelled(name, label, workflow=workflow)
    except RelayflowError as exc:
        raise NotFound(f"prompt_template {path}@{label}: {exc}") from None
    return version.artifact


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One prompt version as ``relayflow prompts list`` shows it."""

    workflow: str
    name: str
    version: str
    template: str | None
    labels: tuple[str, ...]
    first_seen: float
    workflows: tuple[str, ...]
    runs: int
    status: str


def prompt_versions(
    registry: Registry, keys: Sequence[PromptKey] | None = None
) -> list[PromptVersion]:
    """Every prompt version (of ``keys``), by name and workflow, newest first within each,
    with its labels, the workflows that used it and the number of runs whose step ran it."""
    versions = [v for v in registry.list() if v.kind == "prompt"]
    if keys is not None:
        versions = [v for v in versions if (v.workflow, v.name) in keys]
    labels: dict[tuple[str, str, str], list[str]] = {}
    for row in sorted(registry.all_labels()):
        labels.setdefault((row.workflow, row.name, row.version), []).append(row.label)
    uses: dict[tuple[str, str], list[str]] = {}
    for use in registry.tables.uses():
        uses.setdefault((use.name, use.version), []).append(use.workflow)
    return [
        PromptVersion(
            v.workflow,
            v.name,
            v.version,
            v.target,
            tuple(labels.get((v.workflow, v.name, v.version), ())),
            v.created,
            tuple(
                w
                for w in uses.get((v.name, v.version), ())
                if v.workflow in (w, UNKNOWN_WORKFLOW)  # a shared old version: all its users
            ),
            run_count(registry, v.workflow, v.name, v.version),
            v.status,
        )
        for v in versions
    ]


def run_count(registry: Registry, workflow: str, name: str, version: str) -> int:
    """Runs of ``workflow`` whose step ``name`` ran template ``version``."""
    return registry.tables.template_runs(workflow, name, version)


def resolve(registry: Registry, ref: str) -> ModelVersion:
    """The prompt version that ``ref`` names: ``NAME@LABEL`` or ``NAME@HASH`` (NAME: the
    step, or its template file), a label that one prompt has, a hash (prefix), or a NAME or
    template file alone (its production version, else its newest)."""
    if "@" in ref:
        owner, _, what = ref.rpartition("@")
        # a label or hash may tell the workflows apart; `_one` names them when it does not
        keys = prompt_keys(registry, owner, one_workflow=False)
        found = [v for key in keys for v in _by_label_or_hash(registry, key, what)]
        if not found:
            raise NotFound(
                f"{owner!r} has no version or label {what!r}: `relayflow prompts list` shows them"
            )
        return _one(found, ref)
    prompts = {(v.workflow, v.name) for v in registry.list() if v.kind == "prompt"}
    labelled = [row for row in registry.all_labels() if row.label == ref and row[:2] in prompts]
    if labelled:
        if len(labelled) > 1:
            owners = ", ".join(sorted(_shown([(r.workflow, r.name) for r in labelled])))
            raise InputError(
                f"label {ref!r} is on {len(labelled)} prompts ({owners}): write NAME@{ref}"
            )
        row = labelled[0]
        return registry.get(row.name, row.version, workflow=row.workflow)
    by_hash = registry.with_prefix(ref, "prompt") if re.fullmatch(r"[0-9a-f]+", ref) else []
    if by_hash:
        return _one(by_hash, ref)
    keys = prompt_keys(registry, ref, missing_ok=True)
    if keys:
        versions = [
            registry.production(n, workflow=w) or registry.list(n, workflow=w)[0] for w, n in keys
        ]
        return _one(versions, ref)
    raise NotFound(
        f"no prompt version, label or name {ref!r} in the registry: `relayflow prompts list` "
        "shows them"
    )


def prompt_keys(
    registry: Registry, what: str, *, missing_ok: bool = False, one_workflow: bool = True
) -> list[PromptKey]:
    """The prompts a step name or a template file stands for, as (workflow, step). Unless
    ``one_workflow`` is False they must lie in one workflow: when the name is in several and the
    registry names none, an error lists them."""
    prompts = [v for v in registry.list() if v.kind == "prompt"]
    keys = sorted({(v.workflow, v.name) for v in prompts if v.name == what})
    if not keys:
        path = str(Path(what).expanduser().resolve())
        keys = sorted({(v.workflow, v.name) for v in prompts if v.target == path})
    if not keys and not missing_ok:
        raise NotFound(
            f"no prompt {what!r} in the registry (neither a step name nor a registered template "
            "file): run the workflow, or `relayflow prompts list WORKFLOW` to register its "
            "templates"
        )
    workflows = sorted({w for w, _n in keys})
    if one_workflow and len(workflows) > 1:
        raise InputError(
            f"{what!r} is in {len(workflows)} workflows of the registry ({', '.join(workflows)}): "
            "name one with --workflow"
        )
    return keys


def move_label(registry: Registry, ref: str, label: str) -> ModelVersion:
    """Point ``label`` at the version ``ref`` names. A template file stands for the version
    its content is now (which must be registered: the workflow ran, or was listed)."""
    check_label(label)
    path = Path(ref).expanduser()
    if "@" not in ref and path.is_file():
        version = content_version(path.read_bytes())
        keys = prompt_keys(registry, ref)
        chosen = [v for w, n in keys for v in registry.list(n, workflow=w) if v.version == version]
        if not chosen:
            raise NotFound(
                f"the current text of {ref} ({version}) is not registered: run the workflow, or "
                "`relayflow prompts list WORKFLOW` to register its templates"
            )
        target = _one(chosen, ref)
    elif "@" not in ref and (keys := prompt_keys(registry, ref, missing_ok=True)):
        workflow, name = keys[0]  # a step name: the version seen last
        target = registry.list(name, workflow=workflow)[0]
    else:
        target = resolve(registry, ref)
    return registry.set_label(
        target.name, label, target.version, note=f"labelled {label}", workflow=target.workflow
    )


def _by_label_or_hash(registry: Registry, key: PromptKey, what: str) -> list[ModelVersion]:
    workflow, name = key
    version = registry.labels(name, workflow=workflow).get((name, what))
    if version is not None:
        return [registry.get(name, version, workflow=workflow)]
    return [v for v in registry.list(name, workflow=workflow) if v.version.startswith(what)]


def _shown(keys: Sequence[PromptKey]) -> list[str]:
    """Step names, with their workflow when the keys span several workflows."""
    if len({w for w, _n in keys}) <= 1:
        return [n for _w, n in keys]
    return [f"{n} ({w})" for w, n in keys]


def _one(found: Sequence[ModelVersion], ref: str) -> ModelVersion:
    if len(found) == 1:
        return found[0]
    several = len({v.workflow for v in found}) > 1
    which = ", ".join(
        f"{v.name}@{v.version}" + (f" ({v.workflow})" if several else "") for v in found[:5]
    )
    hint = ": name the workflow with --workflow" if several else ": be more precise"
    raise InputError(f"{ref!r} matches {len(found)} prompt versions ({which}){hint}")


__all__ = [
    "PRODUCTION",
    "PromptKey",
    "PromptVersion",
    "move_label",
    "pinned_source",
    "prompt_keys",
    "prompt_versions",
    "register_prompt",
    "resolve",
    "run_count",
    "split_pin",
]
