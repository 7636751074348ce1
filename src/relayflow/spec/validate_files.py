"""Checks of the files a workflow names: that they exist, and that templates and JSON Schemas
inside them parse, each problem at the line of the file where it is."""

from __future__ import annotations

import json
import reprlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relayflow.errors import Problem
from relayflow.schema.file import (
    AgentConfig,
    InferenceConfig,
    QualityCheckConfig,
    RetrievalConfig,
    TransformConfig,
)

if TYPE_CHECKING:
    from relayflow.spec.validate import Where


def _is_local(source: str) -> bool:
    return "://" not in source or source.startswith("file://")


def _file_fields(agent: AgentConfig) -> list[tuple[str, str]]:
    if isinstance(agent, TransformConfig):
        return [("script", agent.script)]
    if isinstance(agent, InferenceConfig):
        template = agent.prompt_template
        fields = [("prompt_template", _template_file(template))] if template else []
        if isinstance(agent.output_schema, str):
            fields.append(("output_schema", agent.output_schema))
        return fields
    if isinstance(agent, QualityCheckConfig) and agent.ruleset:
        return [("ruleset", agent.ruleset)]
    return []


def _template_file(value: str) -> str:
    """The file of ``prompt_template``, without a pinned label (``reply.jinja@production``;
    a label that is not a valid name is reported by validate_prompts, not as a missing file)."""
    path, _, label = value.rpartition("@")
    return path if path and "/" not in label else value


def resolve_path(base: Path, value: str) -> Path:
    """``value`` as the agents resolve it (BuildContext.resolve): ``~`` expanded, relative
    paths against the YAML's folder. An unknown ``~user`` is left as written."""
    try:
        path = Path(value).expanduser()
    except RuntimeError:
        path = Path(value)
    return path if path.is_absolute() else base / path


def path_kind(path: Path) -> str:
    """'file', 'dir' or 'missing'; a name the OS cannot even look up counts as missing."""
    try:
        return "file" if path.is_file() else "dir" if path.is_dir() else "missing"
    except (OSError, ValueError):
        return "missing"


def validate_files(agents: list[AgentConfig], base: Path, where: Where) -> list[Problem]:
    problems = []
    for index, agent in enumerate(agents):
        fields = [(field, value, "file") for field, value in _file_fields(agent)]
        if isinstance(agent, RetrievalConfig) and _is_local(agent.source):
            if "{{" not in agent.source and "{%" not in agent.source and not agent.glob:
                # A retrieval source may be a file or a folder of files.
                fields.append(("source", agent.source.removeprefix("file://"), "any"))
        for field, value, want in fields:
            path = resolve_path(base, value)
            kind = path_kind(path)
            if kind == "missing":
                problems.append(
                    where.problem(
                        index,
                        field,
                        f"file not found: {path}",
                        "create it or fix the path (relative to the YAML)",
                    )
                )
            elif want == "file" and kind != "file":
                problems.append(
                    where.problem(
                        index, field, f"not a file: {path}", "point it at a file, not a folder"
                    )
                )
    return problems


def _read(path: Path) -> str | None:
    """The text of a file the workflow names, or None when it cannot be read (reported by
    ``_validate_files``) or is not UTF-8 (reported by the caller)."""
    if path_kind(path) != "file":
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None


def validate_templates(agents: list[AgentConfig], base: Path, where: Where) -> list[Problem]:
    """Prompt templates (files and inline) and templated lookup sources compile in the
    environment the steps use: a syntax error, an unknown filter or test fails there."""
    from relayflow.prompts.templates import check_template_source

    problems = []
    for index, agent in enumerate(agents):
        if not isinstance(agent, InferenceConfig):
            continue
        sources: list[tuple[str, str, Path | None]] = []
        if agent.prompt_template:
            path = resolve_path(base, _template_file(agent.prompt_template))
            text = _read(path)
            if text is not None:
                sources.append(("prompt_template", text, path))
            elif path_kind(path) == "file":
                problems.append(
                    Problem(
                        str(path),
                        0,
                        f"{agent.name}.prompt_template",
                        "cannot read the template as UTF-8 text",
                        "save it as UTF-8",
                    )
                )
        if agent.prompt is not None:
            sources.append(("prompt", agent.prompt, None))
        for field, text, source_path in sources:
            error = check_template_source(text)
            if error is None:
                continue
            line, message = error
            if source_path is None:
                problems.append(
                    where.problem(
                        index, field, f"template error: {message}", "fix the Jinja syntax"
                    )
                )
            else:
                problems.append(
                    Problem(
                        str(source_path),
                        line,
                        f"{agent.name}.{field}",
                        f"template error: {message}",
                        "fix the Jinja syntax",
                    )
                )
    for index, agent in enumerate(agents):
        if isinstance(agent, RetrievalConfig) and ("{{" in agent.source or "{%" in agent.source):
            error = check_template_source(agent.source)
            if error is not None:
                problems.append(
                    where.problem(
                        index, "source", f"template error: {error[1]}", "fix the Jinja syntax"
                    )
                )
    return problems


def validate_rulesets(agents: list[AgentConfig], base: Path, where: Where) -> list[Problem]:
    """JSON Schemas: a quality check's ``ruleset`` file, an inference agent's ``output_schema``
    (a file, or written inline in the YAML)."""
    problems = []
    for index, agent in enumerate(agents):
        fields: list[tuple[str, str]] = []
        if isinstance(agent, QualityCheckConfig) and agent.ruleset:
            fields.append(("ruleset", agent.ruleset))
        if isinstance(agent, InferenceConfig) and isinstance(agent.output_schema, str):
            fields.append(("output_schema", agent.output_schema))
        if isinstance(agent, InferenceConfig) and isinstance(agent.output_schema, dict):
            error = _schema_error(agent.output_schema)
            if error is not None:
                inside, message, fix = error
                line = where.line(index, "output_schema", *inside)
                problems.append(
                    Problem(where.file, line, f"{agent.name}.output_schema", message, fix)
                )
        for field, value in fields:
            path = resolve_path(base, value)
            text = _read(path)
            if text is None:
                if path_kind(path) == "file":
                    problems.append(
                        Problem(
                            str(path),
                            0,
                            f"{agent.name}.{field}",
                            "cannot read the file as UTF-8 text",
                            "save it as UTF-8 JSON",
                        )
                    )
                continue
            problem = _schema_file_problem(text, str(path), f"{agent.name}.{field}")
            if problem is not None:
                problems.append(problem)
    return problems


def _schema_file_problem(text: str, file: str, field: str) -> Problem | None:
    """What is wrong with the JSON Schema file ``text``, at its line; None if it is valid."""
    try:
        schema: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        return Problem(file, exc.lineno, field, f"invalid JSON: {exc.msg}", "fix the JSON syntax")
    except RecursionError:
        return Problem(file, 1, field, "invalid JSON: nested too deeply", "flatten the schema")
    error = _schema_error(schema)
    if error is None:
        return None
    inside, message, fix = error
    return Problem(file, _json_line(text, inside), field, message, fix)


def _schema_error(schema: Any) -> tuple[tuple[str | int, ...], str, str] | None:
    """What is wrong with a parsed JSON Schema: (where inside it, message, fix), or None."""
    import jsonschema

    if not isinstance(schema, dict):
        # `true`/`false` are schemas to jsonschema, but the steps read an object (read_schema)
        return (
            (),
            f"a JSON Schema is an object, not {type(schema).__name__}",
            'write an object such as {"type": "object", "required": ["answer"]}',
        )
    try:
        with warnings.catch_warnings():
            # jsonschema only warns about a $schema it does not know (and will raise later).
            warnings.simplefilter("error")
            validator = jsonschema.validators.validator_for(schema)
    except Exception:  # DeprecationWarning, or a $schema that is not even a string
        declared = schema.get("$schema") if isinstance(schema, dict) else None
        return (
            ("$schema",),
            f"unknown $schema {reprlib.repr(declared)}",
            "use https://json-schema.org/draft/2020-12/schema or remove $schema",
        )
    try:
        validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        inside = tuple(p for p in exc.path if isinstance(p, str | int))
        return (
            inside,
            f"not a valid JSON Schema: {exc.message}",
            "fix the schema (see json-schema.org)",
        )
    return None


def _json_line(text: str, path: tuple[str | int, ...]) -> int:
    """The line of ``path`` in JSON ``text`` (JSON is YAML), or 1 when it cannot be told."""
    from relayflow.schema.yaml_lines import parse_yaml

    try:
        _, lines = parse_yaml(text)
    except Exception:  # a JSON file that PyYAML reads differently: fall back to its first line
        return 1
    return lines.line_of(path) or 1
