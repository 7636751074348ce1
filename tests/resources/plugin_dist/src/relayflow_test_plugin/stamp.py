"""The ``stamp`` agent type: appends the text of a stamp file to a field of the handoff.

It declares everything a built-in type does: its config, that a workflow-wide ``cache:`` may
reuse it, the file its config names, and its own check of that file (the first line must be
``stamp: <text>``), reported at the line of ``stamp_file`` in the workflow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from relayflow.agents.base import Agent, BuildContext, FileRef
from relayflow.agents.checks import AgentCheck, read_text
from relayflow.core.result import Result, StepInfo
from relayflow.errors import AgentError, Problem
from relayflow.schema.file import AgentConfig


class StampConfig(AgentConfig):
    """``stamp_file`` (relative to the workflow) holds ``stamp: <text>``; the text is appended
    to ``data[field]``."""

    stamp_file: str
    field: str = "output"


def _stamp(text: str) -> str | None:
    first = text.splitlines()[0] if text else ""
    head, sep, rest = first.partition(":")
    return rest.strip() if sep and head.strip() == "stamp" and rest.strip() else None


class StampAgent(Agent):
    type_name: ClassVar[str] = "stamp"
    Config: ClassVar[type[AgentConfig]] = StampConfig
    cacheable: ClassVar[bool] = True
    config: StampConfig

    def __init__(self, config: AgentConfig, ctx: BuildContext) -> None:
        if not isinstance(config, StampConfig):
            config = StampConfig.model_validate(config.model_dump())
        super().__init__(config, ctx)
        self._text = ""

    @classmethod
    def files(cls, config: AgentConfig) -> list[FileRef]:
        assert isinstance(config, StampConfig)
        return [FileRef("stamp_file", config.stamp_file)]

    @classmethod
    def validate(cls, config: AgentConfig, check: AgentCheck) -> list[Problem]:
        assert isinstance(config, StampConfig)
        text = read_text(check.resolve(config.stamp_file))
        if text is None or _stamp(text) is not None:
            return []  # a missing file is reported by the file check
        return [
            check.problem(
                "stamp_file",
                f"{config.stamp_file} does not start with `stamp: <text>`",
                "write the stamp on the file's first line, e.g. `stamp: approved`",
            )
        ]

    def versions(self) -> Mapping[str, str]:
        return {"stamp": self._text}

    async def prepare(self) -> None:
        path = self.ctx.resolve(self.config.stamp_file)
        stamp = _stamp(path.read_text(encoding="utf-8"))
        if stamp is None:
            raise AgentError(f"step {self.name}: {path} does not start with `stamp: <text>`")
        self._text = stamp

    async def run(self, handoff: Any, step: StepInfo) -> Result:
        data = dict(handoff.data)
        data[self.config.field] = f"{data.get(self.config.field, '')} [{self._text}]"
        return Result(data)
