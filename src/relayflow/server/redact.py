"""Hiding what sensitive agents produced from a token that may not read it.

A sensitive step's own output is hidden whole. The fields it wrote (new keys, or keys whose value
it changed) travel on in the handoff, so they are masked in every later output, in the run's
final output and in review items too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MASK = "[redacted]"


class Redactor:
    """Redaction for one run. ``steps`` maps step name to the output it recorded; ``deps`` is
    the workflow's ``depends_on``; ``run_input`` feeds the steps with no upstream."""

    def __init__(
        self,
        sensitive: Iterable[str],
        deps: Mapping[str, tuple[str, ...]],
        run_input: Mapping[str, Any] | None,
    ) -> None:
        self.sensitive = frozenset(sensitive)
        self._deps = deps
        self._input: Mapping[str, Any] = run_input or {}
        self._outputs: dict[str, Mapping[str, Any]] = {}
        self.keys: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.sensitive)

    def see(self, step: str, output: Mapping[str, Any] | None) -> None:
        """Learn a step's output (as recorded or as it streams by)."""
        if output is None:
            return
        self._outputs[step] = output
        if step in self.sensitive:
            before = self._before(step)
            self.keys.update(k for k, v in output.items() if k not in before or before[k] != v)

    def _before(self, step: str) -> dict[str, Any]:
        upstream = self._deps.get(step, ())
        if not upstream:
            return dict(self._input)
        merged: dict[str, Any] = {}
        for name in upstream:
            merged.update(self._outputs.get(name, {}))
        return merged

    def step_output(
        self, step: str, output: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any] | None, bool]:
        """``(output as this token may see it, whether anything was hidden)``."""
        if output is None:
            return None, False
        if step in self.sensitive:
            return {k: MASK for k in output}, True
        return self.mask(output)

    def mask(self, data: Mapping[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
        """``data`` with the fields sensitive steps wrote masked."""
        if data is None:
            return None, False
        hidden = self.keys.intersection(data)
        if not hidden:
            return dict(data), False
        return {k: (MASK if k in hidden else v) for k, v in data.items()}, True
