"""Checks of a whole workflow beyond field types: names, graph, files, models, templates.

Each ``_validate_*`` function is pure: it looks at the parsed workflow and returns problems.
"""

from __future__ import annotations

import graphlib
import json
from pathlib import Path
from typing import Any

from relayflow.errors import Problem
from relayflow.spec.models import (
    AgentConfig,
    HumanReviewConfig,
    InferenceConfig,
    QualityCheckConfig,
    RetrievalConfig,
    TransformConfig,
    WorkflowSpec,
)
from relayflow.spec.yaml_lines import LineMap

Deps = dict[str, tuple[str, ...]]


class _Where:
    """Turns an agent index and field into a Problem at the right line of the workflow file."""

    def __init__(self, file: Path, lines: LineMap, agents: list[AgentConfig]) -> None:
        self.file, self.lines, self.agents = str(file), lines, agents

    def problem(self, index: int, field: str, message: str, fix: str) -> Problem:
        line = self.lines.line_of(("workflow", index, field))
        return Problem(self.file, line, f"{self.agents[index].name}.{field}", message, fix)


def validate_workflow(
    spec: WorkflowSpec,
    agents: list[AgentConfig] | tuple[AgentConfig, ...],
    depends_on: Deps,
    file: Path,
    lines: LineMap,
) -> list[Problem]:
    agents = list(agents)
    where = _Where(file, lines, agents)
    base = file.parent
    problems = _validate_names(agents, where)
    problems += _validate_depends_on(agents, depends_on, where)
    if not problems:
        problems += _validate_acyclic(agents, depends_on, where)
    problems += _validate_files(agents, base, where)
    problems += _validate_models(spec, agents, where, lines, str(file))
    problems += _validate_outputs(agents, where)
    problems += _validate_templates(agents, base, where)
    problems += _validate_rulesets(agents, base, where)
    problems += _validate_expressions(agents, where)
    return problems


def _validate_names(agents: list[AgentConfig], where: _Where) -> list[Problem]:
    first: dict[str, int] = {}
    problems = []
    for index, agent in enumerate(agents):
        if agent.name in first:
            problems.append(
                where.problem(index, "name", f"duplicate name (also agent #{first[agent.name] + 1})",
                              "give every agent a unique name")
            )
        first.setdefault(agent.name, index)
    return problems


def _validate_depends_on(agents: list[AgentConfig], deps: Deps, where: _Where) -> list[Problem]:
    names = {a.name for a in agents}
    problems = []
    for index, agent in enumerate(agents):
        for dep in deps[agent.name]:
            if dep == agent.name:
                problems.append(where.problem(index, "depends_on", "an agent cannot depend on itself",
                                              "remove its own name"))
            elif dep not in names:
                problems.append(
                    where.problem(index, "depends_on", f"unknown agent {dep!r}",
                                  f"use one of: {', '.join(sorted(names - {agent.name}))}")
                )
    return problems


def _validate_acyclic(agents: list[AgentConfig], deps: Deps, where: _Where) -> list[Problem]:
    sorter = graphlib.TopologicalSorter({name: set(d) for name, d in deps.items()})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle: list[str] = list(exc.args[1])
        index = next(i for i, a in enumerate(agents) if a.name == cycle[0])
        return [where.problem(index, "depends_on", f"cycle: {' -> '.join(cycle)}",
                              "remove one of these dependencies")]
    return []


def _is_local(source: str) -> bool:
    return "://" not in source or source.startswith("file://")


def _file_fields(agent: AgentConfig) -> list[tuple[str, str]]:
    if isinstance(agent, TransformConfig):
        return [("script", agent.script)]
    if isinstance(agent, InferenceConfig):
        fields = [("prompt_template", agent.prompt_template)] if agent.prompt_template else []
        if isinstance(agent.output_schema, str):
            fields.append(("output_schema", agent.output_schema))
        return fields
    if isinstance(agent, QualityCheckConfig) and agent.ruleset:
        return [("ruleset", agent.ruleset)]
    return []


def _validate_files(agents: list[AgentConfig], base: Path, where: _Where) -> list[Problem]:
    problems = []
    for index, agent in enumerate(agents):
        fields = _file_fields(agent)
        if isinstance(agent, RetrievalConfig) and _is_local(agent.source):
            if "{{" not in agent.source and "{%" not in agent.source and not agent.glob:
                fields.append(("source", agent.source.removeprefix("file://")))
        for field, value in fields:
            path = Path(value).expanduser()
            path = path if path.is_absolute() else base / path
            if not path.exists():
                problems.append(where.problem(index, field, f"file not found: {path}",
                                              "create it or fix the path (relative to the YAML)"))
    return problems


def _validate_models(
    spec: WorkflowSpec, agents: list[AgentConfig], where: _Where, lines: LineMap, file: str
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
                where.problem(index, "model", f"model alias {agent.model!r} is not defined",
                              f"define it under `models:` or use one of: "
                              f"{', '.join(sorted(spec.models))}")
            )
    if spec.defaults.model and spec.defaults.model not in spec.models:
        problems.append(Problem(file, lines.line_of(("defaults", "model")), "defaults.model",
                                f"model alias {spec.defaults.model!r} is not defined",
                                "define it under `models:`"))
    return problems


def _validate_outputs(agents: list[AgentConfig], where: _Where) -> list[Problem]:
    problems = []
    for index, agent in enumerate(agents):
        if not isinstance(agent, InferenceConfig):
            continue
        if agent.output == "label" and not agent.labels and not agent.features:
            problems.append(where.problem(index, "labels", "output: label needs a list of labels",
                                          "add `labels: [a, b, …]`"))
        if not agent.prompt_template and agent.prompt is None and not agent.features:
            problems.append(where.problem(index, "prompt_template", "no prompt",
                                          "add `prompt_template: file.jinja` or `prompt: …`"))
    return problems


def _validate_templates(agents: list[AgentConfig], base: Path, where: _Where) -> list[Problem]:
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment()
    problems = []
    for index, agent in enumerate(agents):
        if not isinstance(agent, InferenceConfig):
            continue
        sources: list[tuple[str, str, Path | None]] = []
        if agent.prompt_template:
            path = base / agent.prompt_template
            if path.is_file():
                sources.append(("prompt_template", path.read_text(encoding="utf-8"), path))
        if agent.prompt is not None:
            sources.append(("prompt", agent.prompt, None))
        for field, text, path in sources:
            try:
                env.parse(text)
            except TemplateSyntaxError as exc:
                if path is None:
                    problems.append(where.problem(index, field, f"template error: {exc.message}",
                                                  "fix the Jinja syntax"))
                else:
                    problems.append(Problem(str(path), exc.lineno, f"{agent.name}.{field}",
                                            f"template error: {exc.message}",
                                            "fix the Jinja syntax"))
    for index, agent in enumerate(agents):
        if isinstance(agent, RetrievalConfig) and ("{{" in agent.source or "{%" in agent.source):
            try:
                env.parse(agent.source)
            except TemplateSyntaxError as exc:
                problems.append(where.problem(index, "source", f"template error: {exc.message}",
                                              "fix the Jinja syntax"))
    return problems


def _validate_rulesets(agents: list[AgentConfig], base: Path, where: _Where) -> list[Problem]:
    import jsonschema

    problems = []
    for index, agent in enumerate(agents):
        fields: list[tuple[str, str]] = []
        if isinstance(agent, QualityCheckConfig) and agent.ruleset:
            fields.append(("ruleset", agent.ruleset))
        if isinstance(agent, InferenceConfig) and isinstance(agent.output_schema, str):
            fields.append(("output_schema", agent.output_schema))
        for field, value in fields:
            path = base / value
            if not path.is_file():
                continue
            try:
                schema: Any = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                problems.append(Problem(str(path), exc.lineno, f"{agent.name}.{field}",
                                        f"invalid JSON: {exc.msg}", "fix the JSON syntax"))
                continue
            try:
                jsonschema.validators.validator_for(schema).check_schema(schema)
            except jsonschema.SchemaError as exc:
                problems.append(Problem(str(path), 1, f"{agent.name}.{field}",
                                        f"not a valid JSON Schema: {exc.message}",
                                        "fix the schema (see json-schema.org)"))
    return problems


def _validate_expressions(agents: list[AgentConfig], where: _Where) -> list[Problem]:
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment()
    problems = []
    for index, agent in enumerate(agents):
        if isinstance(agent, HumanReviewConfig) and agent.when:
            try:
                env.compile_expression(agent.when)
            except TemplateSyntaxError as exc:
                problems.append(where.problem(index, "when", f"expression error: {exc.message}",
                                              "write a Jinja expression, e.g. confidence < 0.9"))
    return problems
