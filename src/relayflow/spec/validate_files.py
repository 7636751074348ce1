"""Checks that the files a workflow's agents name exist, each problem at the line of the field
that names it. Each agent type declares its files (``Agent.files``) and checks what is inside
them itself (``Agent.validate``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from relayflow.agents.checks import path_kind, resolve_path
from relayflow.errors import Problem

if TYPE_CHECKING:
    from relayflow.agents.base import Agent
    from relayflow.schema.file import AgentConfig
    from relayflow.spec.where import Where

__all__ = ["path_kind", "resolve_path", "validate_files"]


def validate_files(
    agents: Sequence[AgentConfig], types: Sequence[type[Agent]], base: Path, where: Where
) -> list[Problem]:
    """A missing file, or a folder where the agent reads a file, for each file the agents'
    types say their configs name (``types[i]`` is the type of ``agents[i]``)."""
    problems = []
    for index, (agent, kind_of) in enumerate(zip(agents, types, strict=True)):
        for ref in kind_of.files(agent):
            if not ref.checked:
                continue
            path = resolve_path(base, ref.path)
            kind = path_kind(path)
            if kind == "missing":
                problems.append(
                    where.problem(
                        index,
                        ref.field,
                        f"file not found: {path}",
                        "create it or fix the path (relative to the YAML)",
                    )
                )
            elif ref.kind == "file" and kind != "file":
                problems.append(
                    where.problem(
                        index, ref.field, f"not a file: {path}", "point it at a file, not a folder"
                    )
                )
    return problems
