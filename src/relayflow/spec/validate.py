"""Checks of a whole workflow beyond field types: names, graph, models, outputs, expressions
(and, through validate_files, the files it names).

Each ``_validate_*`` function is pure: it looks at the parsed workflow and returns problems.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from relayflow.errors import Problem
from relayflow.schema.file import (
    AgentConfig,
    HumanReviewConfig,
    InferenceConfig,
    RetrainConfig,
    WorkflowSpec,
)
from relayflow.schema.yaml_lines import LineMap
from relayflow.spec.validate_allow import validate_allow, validate_lookup_hosts
from relayflow.spec.validate_consumers import validate_consumers
from relayflow.spec.validate_files import (
    path_kind,
    resolve_path,
    validate_files,
    validate_rulesets,
    validate_templates,
)
from relayflow.spec.validate_models import validate_models
from relayflow.spec.validate_prompts import validate_prompts
from relayflow.spec.validate_scripts import validate_scripts
from relayflow.spec.validate_service import validate_services

Deps = dict[str, tuple[str, ...]]


class Where:
    """Turns an agent index and field into a Problem at the right line of the workflow file."""

    def __init__(
        self, file: Path, lines: LineMap, agents: list[AgentConfig], positions: list[int]
    ) -> None:
        self.file, self.lines, self.agents, self.positions = str(file), lines, agents, positions

    def line(self, index: int, *inside: str | int) -> int:
        """The line of ``inside`` (a path of keys and items) in agent ``index``."""
        return self.lines.line_of(("workflow", self.positions[index], *inside))

    def problem(
        self, index: int, field: str, message: str, fix: str, at: str | None = None
    ) -> Problem:
        """A problem with ``field`` of agent ``index``, at the line of ``at`` (default: the
        field; a field that is missing falls back to the agent's first line)."""
        line = self.lines.line_of(("workflow", self.positions[index], at or field))
        return Problem(self.file, line, f"{self.agents[index].name}.{field}", message, fix)


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
    problems = _validate_names(agents, where)
    problems += _validate_depends_on(agents, where, set(other_names))
    problems += _validate_acyclic(agents, depends_on, where)
    problems += validate_files(agents, base, where)
    if spec is not None:
        problems += _validate_models(spec, agents, where, lines, str(file))
        problems += validate_models(spec.models, lines, str(file))
        problems += _validate_evaluate(spec, base, lines, str(file))
        problems += _validate_access(spec, agents, lines, str(file))
        problems += _validate_budget(spec, lines, str(file))
        problems += validate_allow(spec, base, lines, str(file))
        problems += validate_lookup_hosts(spec, agents, where)
        problems += validate_consumers(spec, base, lines, str(file))
    problems += _validate_outputs(agents, where)
    problems += _validate_retrain(agents, where)
    problems += validate_scripts(agents, base, where)
    problems += validate_templates(agents, base, where)
    problems += validate_prompts(agents, where)
    problems += validate_services(agents, where)
    problems += validate_rulesets(agents, base, where)
    problems += _validate_expressions(agents, where)
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


def _validate_models(
    spec: WorkflowSpec, agents: list[AgentConfig], where: Where, lines: LineMap, file: str
) -> list[Problem]:
    # With no `models:` section every alias means the embedded local model, so that the
    # handbook's example (model: "gpt-5x") runs as written; once a team declares models,
    # an alias it did not declare is a mistake.
    if not spec.models:
        return []
    problems = []
    for index, agent in enumerate(agents):
        if isinstance(agent, InferenceConfig) and agent.model not in spec.models:
            problems.append(
                where.problem(
                    index,
                    "model",
                    f"model alias {agent.model!r} is not defined",
                    f"define it under `models:` or use one of: {', '.join(sorted(spec.models))}",
                )
            )
    if spec.defaults.model and spec.defaults.model not in spec.models:
        problems.append(
            Problem(
                file,
                lines.line_of(("defaults", "model")),
                "defaults.model",
                f"model alias {spec.defaults.model!r} is not defined",
                "define it under `models:`",
            )
        )
    return problems


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


def _validate_outputs(agents: list[AgentConfig], where: Where) -> list[Problem]:
    problems = []
    for index, agent in enumerate(agents):
        if not isinstance(agent, InferenceConfig):
            continue
        if agent.output == "label" and not agent.labels and not agent.features:
            problems.append(
                where.problem(
                    index,
                    "labels",
                    "output: label needs a list of labels",
                    "add `labels: [a, b, …]`",
                    at="output",
                )
            )
        if not agent.prompt_template and agent.prompt is None and not agent.features:
            problems.append(
                where.problem(
                    index,
                    "prompt_template",
                    "no prompt",
                    "add `prompt_template: file.jinja` or `prompt: …`",
                )
            )
        if agent.features is None and agent.prompt_template and agent.prompt is not None:
            problems.append(
                where.problem(
                    index,
                    "prompt",
                    "set both with prompt_template",
                    "keep one: prompt_template (a file) or prompt (inline text)",
                )
            )
        if agent.calibrate and (agent.features is not None or agent.output != "label"):
            problems.append(
                where.problem(
                    index,
                    "calibrate",
                    "calibrate: true works on output: label only",
                    "set output: label with labels, or drop calibrate",
                )
            )
    return problems


def _validate_retrain(agents: list[AgentConfig], where: Where) -> list[Problem]:
    from relayflow.agents.retrain import parse_schedule
    from relayflow.errors import AgentError

    problems = []
    for index, agent in enumerate(agents):
        if not isinstance(agent, RetrainConfig) or agent.trigger != "schedule":
            continue
        if agent.schedule is None:
            problems.append(
                where.problem(
                    index,
                    "schedule",
                    "trigger: schedule needs a schedule",
                    "add `schedule: every 500 runs` (or `6h`, `30 min`, `1d`)",
                    at="trigger",
                )
            )
            continue
        try:
            parse_schedule(agent.schedule)
        except AgentError:
            problems.append(
                where.problem(
                    index,
                    "schedule",
                    f"{agent.schedule[:60]!r} is not a schedule",
                    "write `every 500 runs`, `30 min`, `6h` or `1d`",
                )
            )
    return problems


def _validate_expressions(agents: list[AgentConfig], where: Where) -> list[Problem]:
    from relayflow.agents.expressions import check_expression

    problems = []
    for index, agent in enumerate(agents):
        if isinstance(agent, HumanReviewConfig) and agent.when:
            # compiled by the environment the step uses: an unknown filter or test fails there
            error = check_expression(agent.when)
            if error is not None:
                problems.append(
                    where.problem(
                        index,
                        "when",
                        f"expression error: {error}",
                        "write a Jinja expression, e.g. confidence < 0.9",
                    )
                )
    return problems
