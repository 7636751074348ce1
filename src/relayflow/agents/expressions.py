"""Conditions written in YAML (``when: "data.amount > 1000"``), as sandboxed Jinja expressions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2.environment import TemplateExpression

from relayflow.errors import AgentError
from relayflow.prompts.templates import environment


def check_expression(source: str) -> str | None:
    """Why ``source`` is not a valid expression, or None when it compiles."""
    try:
        environment().compile_expression(source)
    except jinja2.TemplateSyntaxError as exc:
        return exc.message or str(exc)
    return None


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled expression. Undefined names are errors, not silently false."""

    source: str
    _compiled: TemplateExpression = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            compiled = environment().compile_expression(self.source, undefined_to_none=False)
        except jinja2.TemplateSyntaxError as exc:
            raise AgentError(
                f"expression {self.source!r} is invalid: {exc.message} "
                '— write a Jinja expression such as "data.amount > 1000"'
            ) from exc
        object.__setattr__(self, "_compiled", compiled)

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        try:
            value = self._compiled(**context)
            if isinstance(value, jinja2.Undefined):
                value._fail_with_undefined_error()
            return value
        except jinja2.UndefinedError as exc:
            raise AgentError(
                f"expression {self.source!r}: {exc.message} "
                "— the handoff lacks that variable; use `is defined` or fix the name"
            ) from exc
        except Exception as exc:  # user expressions may fail in any way (None < 1, 1 / 0)
            raise AgentError(f"expression {self.source!r}: {type(exc).__name__}: {exc}") from exc
