"""Prompt templates: sandboxed Jinja2, compiled once, versioned by the hash of their source."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

from relayflow.errors import AgentError

INLINE = "<inline prompt>"

#: ``templates/reply.jinja@production``: the last ``@`` starts a label when what follows it is
#: a label name (so a path with an ``@`` in a folder name still reads as a path)
_PIN = re.compile(r"^(?P<path>.+)@(?P<label>[A-Za-z][A-Za-z0-9._-]{0,63})$")


def split_pin(value: str) -> tuple[str, str | None]:
    """``("templates/reply.jinja", "production")`` from ``templates/reply.jinja@production``;
    a value without a label gives ``(value, None)``."""
    match = _PIN.match(value)
    if match is None:
        return value, None
    return match.group("path"), match.group("label")


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    """The one Jinja environment of relayflow: sandboxed, strict about undefined variables.

    The immutable sandbox also forbids ``data.update(...)``-style calls, so a template cannot
    change the handoff it reads.
    """
    return ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def prompt_hash(text: str) -> str:
    """The first 12 hex digits of the SHA-256 of ``text``: the version of a prompt or template."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """A compiled template. ``path`` is None for an inline ``prompt:``; ``version`` hashes the
    source, so editing the file gives a new version."""

    path: Path | None
    source: str
    version: str = field(init=False)
    _compiled: jinja2.Template = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "version", prompt_hash(self.source))
        try:
            compiled = environment().from_string(self.source)
        except jinja2.TemplateSyntaxError as exc:
            raise AgentError(
                f"{self.name}:{exc.lineno}: template syntax error: {exc.message} "
                "— fix the Jinja syntax at that line"
            ) from exc
        object.__setattr__(self, "_compiled", compiled)

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else INLINE

    @property
    def variables(self) -> tuple[str, ...]:
        """The top-level names the template reads from its context, in the order they first
        appear in the source (``{{ text }}`` reads ``text``; ``{{ data.text }}`` reads ``data``)."""
        from jinja2 import meta

        names = meta.find_undeclared_variables(environment().parse(self.source))
        return tuple(sorted(names, key=lambda name: (self.source.find(name), name)))


def load_template(path: Path) -> PromptTemplate:
    """Read and compile the template at ``path`` (AgentError if it is unreadable or invalid)."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise AgentError(
            f"cannot read prompt template {path}: {why} "
            "— check prompt_template (relative paths start at the workflow file's folder)"
        ) from exc
    return PromptTemplate(path, source)


def render(template: PromptTemplate, context: Mapping[str, Any]) -> str:
    """Render ``template`` over ``context``; a missing variable names itself and the template."""
    try:
        return template._compiled.render(context)
    except jinja2.UndefinedError as exc:
        raise AgentError(
            f"prompt template {template.name}: {exc.message} "
            "— the handoff lacks that variable; fix the template or the step that feeds it"
        ) from exc
    except jinja2.TemplateError as exc:
        raise AgentError(f"prompt template {template.name}: {exc}") from exc
    except Exception as exc:  # an error inside the template's own expressions (1 / 0, bad call)
        raise AgentError(f"prompt template {template.name}: {type(exc).__name__}: {exc}") from exc


def check_template_source(source: str) -> tuple[int, str] | None:
    """The (line, message) of the first syntax error in ``source``, or None when it compiles."""
    try:
        environment().compile(source)
    except jinja2.TemplateSyntaxError as exc:
        return exc.lineno, exc.message or str(exc)
    return None
