"""Load a workflow file into validated models, reporting every problem with its file and line."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from relayflow.errors import Problem, SpecError
from relayflow.spec.models import AGENT_CONFIGS, AgentConfig, WorkflowSpec
from relayflow.spec.validate import validate_workflow
from relayflow.spec.yaml_lines import LineMap, Path_, parse_yaml


@dataclass(frozen=True, slots=True)
class Workflow:
    """A workflow file that passed validation: its sections, its agents, and where they came from."""

    file: Path
    name: str
    version: str
    spec: WorkflowSpec
    agents: tuple[AgentConfig, ...]
    depends_on: dict[str, tuple[str, ...]]
    lines: LineMap

    @property
    def base_dir(self) -> Path:
        return self.file.parent


def load_spec(path: str | Path) -> Workflow:
    """Read and validate ``path``. Raises SpecError listing every problem found."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem(str(file), 0, "", "file not found", "check the path")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(str(file), 0, "", f"cannot read the file ({exc})", "")]) from None
    return load_spec_text(text, file)


def load_spec_text(text: str, file: Path) -> Workflow:
    """Validate workflow YAML ``text`` as if it were read from ``file`` (paths resolve beside it)."""
    where = str(file)
    try:
        data, lines = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        what = getattr(exc, "problem", None) or str(exc)
        raise SpecError(
            [Problem(where, line, "", f"invalid YAML: {what}", "fix the YAML syntax")]
        ) from None
    problems = [
        Problem(where, line, _dotted(path), "duplicate key", "keep one of them")
        for path, line in lines.duplicates
    ]
    if not isinstance(data, dict) or "workflow" not in data:
        problems.append(
            Problem(where, 1, "workflow", "missing", "start the file with `workflow:` and a list")
        )
        raise SpecError(problems)

    spec: WorkflowSpec | None = None
    try:
        spec = WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problems_from(exc, (), where, lines, data))

    raw_agents = data.get("workflow")
    agents: list[AgentConfig] = []
    if isinstance(raw_agents, list):
        defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
        for index, raw in enumerate(raw_agents):
            agent = _load_agent(raw, index, where, lines, defaults or {}, problems)
            if agent is not None:
                agents.append(agent)

    depends_on = _resolve_depends_on(agents)
    if spec is not None and len(agents) == len(raw_agents or []):
        problems.extend(validate_workflow(spec, agents, depends_on, file, lines))
    if problems:
        raise SpecError(sorted(set(problems), key=lambda p: (p.line, p.field, p.message)))
    assert spec is not None
    name = spec.name or (file.parent.name if file.stem == "workflow" else file.stem)
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    return Workflow(file, name, version, spec, tuple(agents), depends_on, lines)


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
            Problem(where, lines.line_of(path), f"workflow[{index}]", "an agent must be a mapping",
                    "write `- name: …` and `type: …` on their own lines")
        )
        return None
    label = str(raw.get("name") or f"workflow[{index}]")
    type_name = raw.get("type")
    config_class = _config_class(type_name)
    if config_class is None:
        from relayflow.agents.registry import known_types

        problems.append(
            Problem(where, lines.line_of((*path, "type")), f"{label}.type",
                    f"unknown agent type {type_name!r}" if type_name else "missing",
                    f"use one of: {', '.join(known_types())}")
        )
        return None
    merged = dict(raw)
    for key in ("retry", "timeout"):
        if key not in merged and defaults.get(key) is not None:
            merged[key] = defaults[key]
    try:
        return config_class.model_validate(merged)
    except ValidationError as exc:
        problems.extend(_problems_from(exc, path, where, lines, merged, label=label))
        return None


def _config_class(type_name: Any) -> type[AgentConfig] | None:
    if not isinstance(type_name, str):
        return None
    if type_name in AGENT_CONFIGS:
        return AGENT_CONFIGS[type_name]
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


def _problems_from(
    exc: ValidationError,
    prefix: Path_,
    where: str,
    lines: LineMap,
    data: dict[str, Any],
    label: str | None = None,
) -> list[Problem]:
    out: list[Problem] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        path = (*prefix, *loc)
        field = ".".join(str(p) for p in loc)
        field = f"{label}.{field}" if label else _dotted(path)
        message, fix = _explain(error, loc, data)
        out.append(Problem(where, lines.line_of(path), field, message, fix))
    return out


def _explain(error: Any, loc: tuple[Any, ...], data: dict[str, Any]) -> tuple[str, str]:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing", f"add `{loc[-1]}: …`"
    if kind == "extra_forbidden":
        return "unknown field", "remove it or check its spelling"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{error['input']!r} is not allowed", f"use one of {expected}"
    value = error.get("input")
    shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return f"{error['msg'].lower()} (got {shown})", "fix the value's type or range"


def _dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def model_to_dict(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_defaults=True)
