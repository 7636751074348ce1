"""What an agent type's own validation gets (``Agent.validate``): where its settings are in the
workflow file, the parts of the workflow it may check against, and the helpers that the checks
of several types share (paths as the agents resolve them, templates, JSON Schemas)."""

from __future__ import annotations

import json
import reprlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relayflow.errors import Problem

if TYPE_CHECKING:
    from relayflow.schema.file import ModelSpec, WorkflowSpec
    from relayflow.schema.yaml_lines import LineMap


@dataclass(frozen=True, slots=True)
class AgentCheck:
    """One agent of a workflow file, as its type's ``validate`` sees it.

    ``spec`` is the file's top-level sections, or None when they are invalid themselves
    (already reported): a check that needs them (``models:``, ``allow:``) then says nothing."""

    #: the workflow file, as problems name it
    file: str
    #: the folder that relative paths start from (the YAML's own)
    base: Path
    lines: LineMap
    #: the agent's index under ``workflow:`` in the file
    position: int
    #: the agent's name, the first part of each problem's field
    name: str
    spec: WorkflowSpec | None = None
    #: the names of the agents listed before this one
    earlier: tuple[str, ...] = ()

    @property
    def models(self) -> Mapping[str, ModelSpec] | None:
        """The ``models:`` section, or None when the top-level sections are invalid."""
        return self.spec.models if self.spec is not None else None

    def line(self, *inside: str | int) -> int:
        """The line of ``inside`` (a path of keys and items) in this agent."""
        return self.lines.line_of(("workflow", self.position, *inside))

    def problem(self, field: str, message: str, fix: str, at: str | None = None) -> Problem:
        """A problem with ``field``, at the line of ``at`` (default: the field; a field that is
        missing falls back to the agent's first line)."""
        return Problem(self.file, self.line(at or field), f"{self.name}.{field}", message, fix)

    def problem_at(
        self, inside: tuple[str | int, ...], field: str, message: str, fix: str
    ) -> Problem:
        """A problem with ``field`` at the line of ``inside`` (a path inside the agent)."""
        return Problem(self.file, self.line(*inside), f"{self.name}.{field}", message, fix)

    def resolve(self, value: str) -> Path:
        """A path from the YAML, as the agents resolve it."""
        return resolve_path(self.base, value)


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


def is_local(source: str) -> bool:
    """Whether a path or URL from the YAML names the local file system."""
    return "://" not in source or source.startswith("file://")


def is_template(source: str) -> bool:
    return "{{" in source or "{%" in source


def read_text(path: Path) -> str | None:
    """The text of a file the workflow names, or None when it cannot be read (reported by the
    file check) or is not UTF-8 (reported by the caller)."""
    if path_kind(path) != "file":
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None


def template_error(source: str) -> tuple[int, str] | None:
    """``(line, message)`` when the Jinja ``source`` does not compile in the environment the
    steps use (a syntax error, an unknown filter or test); None when it does."""
    from relayflow.prompts.templates import check_template_source

    return check_template_source(source)


def schema_file_problem(path: Path, field: str) -> Problem | None:
    """What is wrong with the JSON Schema file at ``path``, at its line; None when it is valid
    or cannot be found (the file check reports that)."""
    text = read_text(path)
    if text is None:
        if path_kind(path) == "file":
            return Problem(
                str(path), 0, field, "cannot read the file as UTF-8 text", "save it as UTF-8 JSON"
            )
        return None
    file = str(path)
    try:
        schema: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        return Problem(file, exc.lineno, field, f"invalid JSON: {exc.msg}", "fix the JSON syntax")
    except RecursionError:
        return Problem(file, 1, field, "invalid JSON: nested too deeply", "flatten the schema")
    error = schema_error(schema)
    if error is None:
        return None
    inside, message, fix = error
    return Problem(file, _json_line(text, inside), field, message, fix)


def schema_error(schema: Any) -> tuple[tuple[str | int, ...], str, str] | None:
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
