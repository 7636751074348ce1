"""A/B variants of a workflow: their checks (each problem at the variant's own line), their
traffic weights, and the workflow each one runs as (``name@variant``, with its overrides).

A variant replaces settings of named agents; nothing else of the workflow changes. It runs as a
derived `Workflow` whose name is ``<workflow>@<variant>``, so the store, reviews and reports
tell its runs apart with no new column, and whose version hashes the overrides too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from relayflow.errors import InputError, NotFound, Problem
from relayflow.schema.file import AgentConfig, VariantSpec, WorkflowSpec
from relayflow.schema.yaml_lines import LineMap, Path_

if TYPE_CHECKING:
    from relayflow.schema.workflow import Workflow

#: what joins a workflow's name and its variant's in run records (``support@terse``)
SEPARATOR = "@"
#: a variant name: it becomes part of run and batch names, so letters, digits, ``_ . -`` only
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,39}")
#: settings a variant cannot change: they say which agent it is
FIXED = ("name", "type")


def weights(variants: Sequence[VariantSpec]) -> list[float]:
    """Each variant's share of live traffic, summing to 1: the weights as given, normalised;
    equal shares when no variant gives one; 0 for a variant without one beside others that
    have one. All zero when every weight given is 0 (a validation error)."""
    if not variants:
        return []
    if all(v.weight is None for v in variants):
        return [1 / len(variants)] * len(variants)
    raw = [v.weight or 0.0 for v in variants]
    total = sum(raw)
    return [w / total for w in raw] if total > 0 else [0.0] * len(raw)


def variant_names(workflow: Workflow) -> list[str]:
    return [v.name for v in workflow.spec.variants]


def split_name(run_workflow: str) -> tuple[str, str | None]:
    """``("support", "terse")`` for ``support@terse``; ``("support", None)`` for ``support``."""
    base, sep, variant = run_workflow.rpartition(SEPARATOR)
    return (base, variant) if sep and base else (run_workflow, None)


def find_variant(workflow: Workflow, name: str) -> VariantSpec:
    for variant in workflow.spec.variants:
        if variant.name == name:
            return variant
    if not workflow.spec.variants:
        raise InputError(
            f"{workflow.file}: workflow {workflow.name!r} has no variants: — add a `variants:` "
            "section, or leave out --variant"
        )
    names = ", ".join(variant_names(workflow))
    raise NotFound(f"{workflow.file}: no variant {name!r} — use one of: {names}")


def apply_overrides(agent: AgentConfig, override: dict[str, Any]) -> AgentConfig:
    """``agent`` with the settings of ``override`` replacing its own (validated again)."""
    merged = {**agent.model_dump(exclude_unset=True), **override}
    return type(agent).model_validate(merged)


def variant_workflow(workflow: Workflow, name: str) -> Workflow:
    """The workflow that variant ``name`` runs: named ``<workflow>@<name>``, its agents with the
    variant's overrides, its version the workflow's (no overrides) or a hash of both."""
    variant = find_variant(workflow, name)
    agents = tuple(
        apply_overrides(a, variant.agents[a.name]) if a.name in variant.agents else a
        for a in workflow.agents
    )
    version = workflow.version
    if variant.agents:
        overrides = json.dumps(variant.agents, sort_keys=True, default=str)
        version = hashlib.sha256(f"{workflow.version}\n{overrides}".encode()).hexdigest()[:12]
    return dataclasses.replace(
        workflow, name=f"{workflow.name}{SEPARATOR}{name}", version=version, agents=agents
    )


def workflow_for_run(workflow: Workflow, run_workflow: str) -> Workflow | None:
    """The workflow (or variant of it) whose runs are recorded as ``run_workflow``; None when
    ``workflow`` is neither."""
    if run_workflow == workflow.name:
        return workflow
    base, variant = split_name(run_workflow)
    if base != workflow.name or variant not in variant_names(workflow):
        return None
    return variant_workflow(workflow, variant)


# ---- checks -----------------------------------------------------------------------------------


def validate_variants(
    spec: WorkflowSpec,
    agents: Sequence[AgentConfig],
    depends_on: dict[str, tuple[str, ...]],
    file: Path,
    lines: LineMap,
    *,
    positions: Sequence[int],
    other_names: Iterable[str] = (),
    known: Iterable[Problem] = (),
) -> list[Problem]:
    """Every problem of the ``variants:`` section, at the line of the variant that causes it.

    ``known`` are the problems already found in the workflow itself: a variant's derived
    workflow has them too, and they are not reported again."""
    if not spec.variants:
        return []
    where = str(file)
    problems: list[Problem] = []
    if len(spec.variants) < 2:
        problems.append(
            Problem(
                where,
                lines.line_of(("variants",)),
                "variants",
                "one variant compares nothing",
                "add another (e.g. `- name: control` for the workflow as written)",
            )
        )
    if sum(v.weight or 0.0 for v in spec.variants) == 0 and any(
        v.weight is not None for v in spec.variants
    ):
        problems.append(
            Problem(
                where,
                lines.line_of(("variants",)),
                "variants",
                "every weight is 0, so no variant gets traffic",
                "give at least one variant a weight above 0",
            )
        )
    first: dict[str, int] = {}
    for index, variant in enumerate(spec.variants):
        label = f"variants[{index}]"
        if not NAME.fullmatch(variant.name):
            problems.append(
                Problem(
                    where,
                    lines.line_of(("variants", index, "name")),
                    f"{label}.name",
                    f"{variant.name[:60]!r} is not a valid variant name",
                    "use letters, digits, `_`, `.` and `-` (at most 40)",
                )
            )
        elif variant.name in first:
            problems.append(
                Problem(
                    where,
                    lines.line_of(("variants", index, "name")),
                    f"{label}.name",
                    f"duplicate variant name (also variant #{first[variant.name] + 1})",
                    "give every variant a unique name",
                )
            )
        first.setdefault(variant.name, index)
    skip = set(other_names)
    by_name = {a.name: i for i, a in enumerate(agents)}
    known_set = set(known)
    for index, variant in enumerate(spec.variants):
        derived = list(agents)
        changed = False
        for agent_name, override in variant.agents.items():
            path: Path_ = ("variants", index, "agents", agent_name)
            field = f"variants[{index}].agents.{agent_name}"
            if agent_name in skip:
                continue
            if agent_name not in by_name:
                problems.append(
                    Problem(
                        where,
                        lines.line_of(path),
                        field,
                        f"unknown agent {agent_name!r}",
                        f"use one of: {', '.join(sorted(by_name))}",
                    )
                )
                continue
            agent = agents[by_name[agent_name]]
            if _is_source(agent) and not depends_on.get(agent_name):
                problems.append(
                    Problem(
                        where,
                        lines.line_of(path),
                        field,
                        "the batch source cannot vary: every variant runs on the same inputs",
                        "override the agents after it",
                    )
                )
                continue
            fixed = [key for key in FIXED if key in override]
            for key in fixed:
                problems.append(
                    Problem(
                        where,
                        lines.line_of((*path, key)),
                        f"{field}.{key}",
                        "a variant cannot change an agent's name or type",
                        "remove it; override the agent's other settings",
                    )
                )
            rest = {key: value for key, value in override.items() if key not in FIXED}
            try:
                derived[by_name[agent_name]] = apply_overrides(agent, rest)
                changed = True
            except ValidationError as exc:
                from relayflow.schema.problems import problems_from

                problems.extend(problems_from(exc, path, where, lines, type(agent), label=field))
        if changed:
            problems.extend(
                _derived_problems(
                    spec, derived, depends_on, file, lines, index, positions, skip, known_set
                )
            )
    return problems


def _derived_problems(
    spec: WorkflowSpec,
    derived: list[AgentConfig],
    depends_on: dict[str, tuple[str, ...]],
    file: Path,
    lines: LineMap,
    index: int,
    positions: Sequence[int],
    other_names: set[str],
    known: set[Problem],
) -> list[Problem]:
    """The whole-workflow checks (files, templates, models, outputs) of variant ``index``'s
    workflow, with each overridden setting mapped to its line under the variant."""
    from relayflow.spec.validate import validate_workflow

    position = {agent.name: positions[i] for i, agent in enumerate(derived)}
    mapped = LineMap(dict(lines.lines))
    own_lines: set[int] = set()
    prefix = ("variants", index, "agents")
    for path, line in lines.lines.items():
        if path[:3] == prefix and len(path) > 3 and path[3] in position:
            mapped.lines[("workflow", position[str(path[3])], *path[4:])] = line
            own_lines.add(line)
    found = validate_workflow(
        spec, derived, depends_on, file, mapped, positions=positions, other_names=other_names
    )
    where = str(file)
    out = []
    for problem in found:
        if problem in known:
            continue
        if problem.file == where:
            if problem.line not in own_lines:
                continue  # a problem of the workflow as written, reported by itself
            problem = dataclasses.replace(
                problem, field=f"variants[{index}].agents.{problem.field}"
            )
        out.append(problem)
    return out


def _is_source(agent: AgentConfig) -> bool:
    """Whether ``agent``'s type can start a batch (a retrieval agent, or a plugin's source)."""
    from relayflow.agents.base import SourceAgent
    from relayflow.agents.registry import agent_class

    return issubclass(agent_class(agent.type), SourceAgent)
