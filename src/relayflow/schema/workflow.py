"""The loaded workflow: a file that passed validation, as every layer above the loader sees it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from relayflow.errors import Problem
from relayflow.schema.file import AgentConfig, WorkflowSpec
from relayflow.schema.yaml_lines import LineMap


@dataclass(frozen=True, slots=True)
class Workflow:
    """A workflow file that passed validation: its sections, its agents, and where they came from.

    ``file`` is absolute, so ``base_dir`` still resolves relative paths after a ``chdir``.
    """

    file: Path
    name: str
    version: str
    spec: WorkflowSpec
    agents: tuple[AgentConfig, ...]
    depends_on: dict[str, tuple[str, ...]]
    lines: LineMap
    #: the file that ``extends:`` names, when ``file`` is an overlay of it (relative paths
    #: start at its folder)
    extends: Path | None = None
    #: what is not wrong yet but will stop a run (a model file still to be trained), shown by
    #: ``relayflow validate`` as warnings
    notes: tuple[Problem, ...] = ()

    @property
    def base_dir(self) -> Path:
        return (self.extends or self.file).parent
