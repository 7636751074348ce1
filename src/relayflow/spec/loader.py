"""Load a workflow file into validated models, reporting every problem with its file and line."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from relayflow.errors import Problem, SpecError
from relayflow.schema.file import AgentConfig, Defaults, WorkflowSpec
from relayflow.schema.problems import did_you_mean, problems_from
from relayflow.schema.problems import dotted as _dotted
from relayflow.schema.problems import short as _short
from relayflow.schema.workflow import Workflow
from relayflow.schema.yaml_lines import LineMap, Path_, YAMLLimitError, parse_yaml
from relayflow.spec.extends import KEY, Layered, attribute, base_path, merge
from relayflow.spec.validate import validate_workflow
from relayflow.spec.validate_models import model_file_notes


def load_spec(path: str | Path) -> Workflow:
    """Read and validate ``path``. Raises SpecError listing every problem found."""
    file = Path(path)
    return load_spec_text(_read(file), file)


def _read(file: Path) -> str:
    """The file's text, or a SpecError that says why it cannot be read."""
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem(str(file), 0, "", "file not found", "check the path")]) from None
    except IsADirectoryError:
        raise SpecError(
            [Problem(str(file), 0, "", "is a folder", "pass the workflow's YAML file itself")]
        ) from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            [Problem(str(file), 0, "", f"not UTF-8 text ({exc.reason})", "save it as UTF-8")]
        ) from None
    except OSError as exc:
        raise SpecError(
            [
                Problem(
                    str(file),
                    0,
                    "",
                    f"cannot read the file ({exc.strerror or exc})",
                    "check the path and its permissions",
                )
            ]
        ) from None


def load_spec_text(text: str, file: Path) -> Workflow:
    """Validate workflow YAML ``text`` as if read from ``file`` (paths resolve beside it)."""
    where = str(file)
    try:
        data, lines = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise SpecError([_yaml_problem(exc, text, where)]) from None
    problems = [
        Problem(where, line, _dotted(path), "duplicate key", "keep one of them")
        for path, line in lines.duplicates
    ]
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        problems.append(
            Problem(
                where,
                lines.line_of(()) or 1,
                "",
                f"the file is {what}",
                "start the file with `workflow:` and a list of agents",
            )
        )
        raise SpecError(problems)
    layered: Layered | None = None
    if KEY in data:
        layered = _layered(data, lines, file, problems)
        data, lines = layered.data, layered.lines
    early = len(problems)  # these already name their file
    if "workflow" not in data:
        problems.append(
            Problem(
                where,
                lines.line_of(()) or 1,
                "workflow",
                "missing",
                "start the file with `workflow:` and a list of agents",
            )
        )
        raise SpecError(problems)

    spec: WorkflowSpec | None = None
    # `x-…` sections are the user's own (a place for YAML anchors), as in Compose files
    sections = {k: v for k, v in data.items() if not _is_own(k)}
    try:
        spec = WorkflowSpec.model_validate(sections)
    except ValidationError as exc:
        # Each agent is validated on its own below, against its type's model.
        problems.extend(
            problems_from(exc, (), where, lines, WorkflowSpec, skip_agents=True, data=sections)
        )

    raw_agents = data.get("workflow")
    agents: list[AgentConfig] = []
    positions: list[int] = []
    failed_names: list[str] = []
    if isinstance(raw_agents, list):
        defaults = _defaults(data.get("defaults"))
        for index, raw in enumerate(raw_agents):
            agent = _load_agent(raw, index, where, lines, defaults, problems)
            if agent is not None:
                agents.append(agent)
                positions.append(index)
            elif isinstance(raw, dict) and isinstance(raw.get("name"), str):
                failed_names.append(raw["name"])

    depends_on = _resolve_depends_on(agents)
    root = layered.base if layered is not None else file
    problems.extend(
        validate_workflow(
            spec, agents, depends_on, root, lines, positions=positions, other_names=failed_names
        )
    )
    if spec is not None and spec.variants:
        from relayflow.spec.variants import validate_variants

        problems.extend(
            validate_variants(
                spec,
                agents,
                depends_on,
                root,
                lines,
                positions=positions,
                other_names=failed_names,
                known=problems,
            )
        )
    if layered is not None:
        problems[early:] = attribute(problems[early:], where, str(root), layered.owned)
    if problems:
        raise SpecError(sorted(set(problems), key=lambda p: _order(p, where)))
    assert spec is not None  # noqa: S101 - invariant: no problems means a spec
    notes = model_file_notes(spec.models, root.parent, lines, str(root))
    if layered is not None:
        notes = attribute(notes, where, str(root), layered.owned)
    # absolute: the folder of `workflow.yaml` given as a bare name is the current one
    name = spec.name or (root.absolute().parent.name if root.stem == "workflow" else root.stem)
    if layered is not None:
        # the base's text counts: editing either file makes a new version
        text = layered.base_text + "\0" + text
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    return Workflow(
        file.absolute(),
        name,
        version,
        spec,
        tuple(agents),
        depends_on,
        lines,
        root.absolute() if layered is not None else None,
        tuple(notes),
    )


def _layered(data: dict[str, Any], lines: LineMap, file: Path, problems: list[Problem]) -> Layered:
    """The base that ``extends:`` names, parsed, with ``data`` merged onto it. A problem with
    ``extends:`` itself, or one in the base's YAML, is raised at once: nothing else can be
    checked without the base."""
    where, line = str(file), lines.line_of((KEY,))
    value = data[KEY]
    if not isinstance(value, str) or not value.strip():
        problems.append(
            Problem(where, line, KEY, f"must be a file path (got {_short(value)})",
                    "write `extends: workflow.yaml` (relative to this file)")
        )  # fmt: skip
        raise SpecError(problems)
    if "workflow" in data:
        problems.append(
            Problem(where, lines.line_of(("workflow",)), "workflow",
                    "a file that extends another cannot list agents",
                    f"change the agents in {value}, or remove `extends:`")
        )  # fmt: skip
        data = {k: v for k, v in data.items() if k != "workflow"}  # the base's agents are checked
    base = base_path(file, value)
    try:
        base_text = _read(base)
    except SpecError as exc:
        problem = exc.problems[0]
        problems.append(Problem(where, line, KEY, f"{problem.message}: {base}", problem.fix))
        raise SpecError(problems) from None
    try:
        base_data, base_lines = parse_yaml(base_text)
    except yaml.YAMLError as exc:
        raise SpecError([*problems, _yaml_problem(exc, base_text, str(base))]) from None
    if not isinstance(base_data, dict):
        problems.append(
            Problem(where, line, KEY, f"{base} is not a workflow (not a mapping)",
                    "extend a workflow file, one that starts with `workflow:`")
        )  # fmt: skip
        raise SpecError(problems)
    if KEY in base_data:
        problems.append(
            Problem(str(base), base_lines.line_of((KEY,)), KEY,
                    "a file that another extends cannot extend a third",
                    "extend the file at the root of the chain directly")
        )  # fmt: skip
        raise SpecError(problems)
    problems.extend(
        Problem(str(base), n, _dotted(path), "duplicate key", "keep one of them")
        for path, n in base_lines.duplicates
    )
    merged, merged_lines, owned = merge(base_data, base_lines, data, lines)
    return Layered(merged, merged_lines, base, base_text, owned)


def _order(problem: Problem, where: str) -> tuple[bool, str, int, str, str]:
    """The workflow file's own problems first, by line; then those inside files it names."""
    return (problem.file != where, problem.file, problem.line, problem.field, problem.message)


def _yaml_problem(exc: yaml.YAMLError, text: str, where: str) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        line = mark.line + 1
    elif isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
    else:
        line = 0
    what = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc)
    if isinstance(exc, YAMLLimitError):
        return Problem(where, line, "", what, exc.fix)
    fix = "indent with spaces: YAML forbids tabs" if "'\\t'" in what else "fix the YAML syntax"
    return Problem(where, line, "", f"invalid YAML: {what}", fix)


def _defaults(raw: Any) -> dict[str, Any]:
    """The ``defaults:`` section as written, or nothing when it is invalid (reported once, by
    the section itself, not again in every agent that would inherit it)."""
    if not isinstance(raw, dict):
        return {}
    try:
        Defaults.model_validate(raw)
    except ValidationError:
        return {}
    return raw


def _load_agent(
    raw: Any,
    index: int,
    where: str,
    lines: LineMap,
    defaults: dict[str, Any],
    problems: list[Problem],
) -> AgentConfig | None:
    path: Path_ = ("workflow", index)
    if not isinstance(raw, dict):
        problems.append(
            Problem(
                where,
                lines.line_of(path),
                f"workflow[{index}]",
                "an agent must be a mapping",
                "write `- name: …` and `type: …` on their own lines",
            )
        )
        return None
    name = raw.get("name")
    label = name if isinstance(name, str) and name else f"workflow[{index}]"
    type_name = raw.get("type")
    config_class = _config_class(type_name)
    if config_class is None:
        from relayflow.agents.registry import known_types

        problems.append(
            Problem(
                where,
                lines.line_of((*path, "type")),
                f"{label}.type",
                f"unknown agent type {_short(type_name)}" if type_name else "missing",
                _type_fix(type_name, known_types()),
            )
        )
        return None
    merged = dict(raw)
    for key in ("retry", "timeout", "model"):
        if key in config_class.model_fields and key not in merged and defaults.get(key) is not None:
            merged[key] = defaults[key]
    try:
        return config_class.model_validate(merged)
    except ValidationError as exc:
        problems.extend(problems_from(exc, path, where, lines, config_class, label=label))
        return None


def _is_own(key: Any) -> bool:
    return isinstance(key, str) and key.startswith("x-")


def _type_fix(type_name: Any, known: list[str]) -> str:
    guess = did_you_mean(type_name, known) if isinstance(type_name, str) else None
    return f"did you mean `{guess}`?" if guess else f"use one of: {', '.join(known)}"


def _config_class(type_name: Any) -> type[AgentConfig] | None:
    """The config model that the agent type declares (importing its module: only the types a
    file uses are imported); None for an unknown type."""
    if not isinstance(type_name, str):
        return None
    from relayflow.agents.registry import agent_class
    from relayflow.errors import RelayflowError

    try:
        return agent_class(type_name).Config
    except RelayflowError:
        return None


def _resolve_depends_on(agents: list[AgentConfig]) -> dict[str, tuple[str, ...]]:
    """``depends_on`` as written, or the agent above when it is not given."""
    resolved: dict[str, tuple[str, ...]] = {}
    for index, agent in enumerate(agents):
        if agent.depends_on is not None:
            resolved[agent.name] = tuple(agent.depends_on)
        else:
            resolved[agent.name] = (agents[index - 1].name,) if index else ()
    return resolved


def model_to_dict(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_defaults=True)
