"""Where a problem of an agent's settings is in the workflow file: its line, found by the
agent's index and the path of keys inside it."""

from __future__ import annotations

from pathlib import Path

from relayflow.errors import Problem
from relayflow.schema.file import AgentConfig
from relayflow.schema.yaml_lines import LineMap


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
