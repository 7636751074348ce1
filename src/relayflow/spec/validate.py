"""Checks of a whole workflow beyond field types: names, graph, the top-level sections, the
files the agents name, and each agent's own checks (``Agent.validate``, asked through the
registry: a plugin's type takes part as a built-in one does).

Each ``_validate_*`` function is pure: it looks at the parsed workflow and returns problems.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from relayflow.agents.base import Agent
from relayflow.agents.checks import AgentCheck, path_kind, resolve_path
from relayflow.agents.registry import agent_class
from relayflow.errors import Problem
from relayflow.schema.file import AgentConfig, WorkflowSpec
from relayflow.schema.yaml_lines import LineMap
from relayflow.spec.validate_allow import validate_allow
from relayflow.spec.validate_consumers import validate_consumers
from relayflow.spec.validate_files import validate_files
from relayflow.spec.validate_models import validate_models
from relayflow.spec.validate_optimize import validate_optimize
from relayflow.spec.where import Where

Deps = dict[str, tuple[str, ...]]


def validate_workflow(
    spec: WorkflowSpec | None,
    agents: Sequence[AgentConfig],
    depends_on: Deps,
    file: Path,
    lines: LineMap,
    *,
    positions: Sequence[int] | None = None,
    other_names: Iterable[str] = (),
) -> list[Problem]:
    """Every problem of the workflow beyond single fields.

    ``positions`` gives each agent's index under ``workflow:`` when some agents failed to load
    (default: agents are the whole list); ``other_names`` are the names of those that failed, so
    a dependency on them is not reported as unknown. ``spec`` is None when the top-level
    sections are invalid (already reported); the checks that need it are skipped.
    """
    agents = list(agents)
    where = Where(file, lines, agents, list(positions or range(len(agents))))
    base = file.parent
    types = [agent_class(agent.type) for agent in agents]
    problems = _validate_names(agents, where)
    problems += _validate_depends_on(agents, where, set(other_names))
    problems += _validate_acyclic(agents, depends_on, where)
    problems += validate_files(agents, types, base, where)
    if spec is not None:
        problems += _validate_default_model(spec, lines, str(file))
        problems += validate_models(spec.models, lines, str(file))
        problems += _validate_evaluate(spec, base, lines, str(file))
        problems += _validate_access(spec, agents, lines, str(file))
        problems += _validate_budget(spec, lines, str(file))
        problems += validate_allow(spec, base, lines, str(file))
        problems += validate_consumers(spec, base, lines, str(file))
        problems += validate_optimize(spec, agents, lines, str(file), base)
    problems += _validate_agents(spec, agents, types, where, base)
    return problems


def _validate_agents(
    spec: WorkflowSpec | None,
    agents: list[AgentConfig],
    types: list[type[Agent]],
    where: Where,
    base: Path,
) -> list[Problem]:
    """Each agent's own checks, as its type declares them."""
    problems: list[Problem] = []
    for index, (agent, kind) in enumerate(zip(agents, types, strict=True)):
        earlier = tuple(a.name for a in agents[:index])
        check = AgentCheck(
            where.file, base, where.lines, where.positions[index], agent.name, spec, earlier
        )
        problems += kind.validate(agent, check)
    return problems


def _validate_names(agents: list[AgentConfig], where: Where) -> list[Problem]:
    first: dict[str, int] = {}
    problems = []
    for index, agent in enumerate(agents):
        if agent.name in first:
            problems.append(
                where.problem(
                    index,
                    "name",
                    f"duplicate name (also agent #{where.positions[first[agent.name]] + 1})",
                    "give every agent a unique name",
                )
            )
        first.setdefault(agent.name, index)
    return problems


def _validate_depends_on(
    agents: list[AgentConfig], where: Where, other_names: set[str]
) -> list[Problem]:
    """Check the names written under ``depends_on``. The implicit default (the agent above)
    always exists, and equals the agent's own name only when names repeat (reported apart)."""
    names = {a.name for a in agents}
    problems = []
    for index, agent in enumerate(agents):
        for dep in agent.depends_on or ():
            if dep == agent.name:
                problems.append(
                    where.problem(
                        index,
                        "depends_on",
                        "an agent cannot depend on itself",
                        "remove its own name",
                    )
                )
            elif dep not in names and dep not in other_names:
                problems.append(
                    where.problem(
                        index,
                        "depends_on",
                        f"unknown agent {dep!r}",
                        f"use one of: {', '.join(sorted((names | other_names) - {agent.name}))}",
                    )
                )
    return problems


def _validate_acyclic(agents: list[AgentConfig], deps: Deps, where: Where) -> list[Problem]:
    """Report one cycle, at the ``depends_on`` of its agent that comes first in the file (its
    dependency inside the cycle points down the file: that is the edge to question)."""
    position: dict[str, int] = {}
    for index, agent in enumerate(agents):
        position.setdefault(agent.name, index)
    # Unknown names and self-dependencies are reported on their own; leave them out here.
    graph = {
        name: {d for d in deps.get(name, ()) if d in position and d != name} for name in position
    }
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        # graphlib lists each node followed by one that depends on it; reverse to read
        # "a depends on b depends on … a".
        cycle: list[str] = list(reversed(exc.args[1]))[:-1]
        start = min(range(len(cycle)), key=lambda k: position[cycle[k]])
        cycle = cycle[start:] + cycle[:start]
        shown = " -> ".join([*cycle, cycle[0]])
        return [
            where.problem(
                position[cycle[0]],
                "depends_on",
                f"cycle: {shown} (each depends on the next)",
                "remove one of these dependencies",
            )
        ]
    return []


def _validate_default_model(spec: WorkflowSpec, lines: LineMap, file: str) -> list[Problem]:
    # with no `models:` section every alias means the embedded local model (see the
    # inference agent's own check of its `model:`)
    if not spec.models or not spec.defaults.model or spec.defaults.model in spec.models:
        return []
    return [
        Problem(
            file,
            lines.line_of(("defaults", "model")),
            "defaults.model",
            f"model alias {spec.defaults.model!r} is not defined",
            "define it under `models:`",
        )
    ]


def _validate_evaluate(spec: WorkflowSpec, base: Path, lines: LineMap, file: str) -> list[Problem]:
    golden = spec.evaluate.golden if spec.evaluate else None
    if golden is None or path_kind(resolve_path(base, golden)) == "file":
        return []
    return [
        Problem(
            file,
            lines.line_of(("evaluate", "golden")),
            "evaluate.golden",
            f"file not found: {resolve_path(base, golden)}",
            "create the golden set or fix the path (relative to the YAML)",
        )
    ]


def _validate_access(
    spec: WorkflowSpec, agents: list[AgentConfig], lines: LineMap, file: str
) -> list[Problem]:
    names = [a.name for a in agents]
    return [
        Problem(
            file,
            lines.line_of(("access", "sensitive", i)),
            f"access.sensitive[{i}]",
            f"no agent named {name!r}",
            f"use one of: {', '.join(names)}",
        )
        for i, name in enumerate(spec.access.sensitive)
        if name not in names
    ]


def _validate_budget(spec: WorkflowSpec, lines: LineMap, file: str) -> list[Problem]:
    limits = spec.budget.limits if spec.budget else []
    return [
        Problem(
            file,
            lines.line_of(("budget", "limits", i)),
            f"budget.limits[{i}]",
            "the limit has no amount",
            "add `currency: 5.00` (in the prices' unit) or `tokens: 100000`, or both",
        )
        for i, limit in enumerate(limits)
        if limit.currency is None and limit.tokens is None
    ]
