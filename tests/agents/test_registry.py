"""Agent types: built-ins by lazy import, registered classes, and third-party entry points."""

from __future__ import annotations

import asyncio
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import relayflow
from relayflow.agents import registry

PLUGIN = """
from relayflow.agents.base import Agent, Result
from relayflow.schema.file import AgentConfig


class ShoutConfig(AgentConfig):
    field: str = "text"


class ShoutAgent(Agent):
    type_name = "shout"
    Config = ShoutConfig

    async def run(self, handoff, step):
        value = handoff.data[self.config.field]
        return Result({**handoff.data, self.config.field: value.upper()})
"""


def test_a_plugin_from_the_entry_point_group_runs_in_a_workflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shout_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    point = EntryPoint("shout", "shout_plugin:ShoutAgent", "relayflow.agents")
    monkeypatch.setattr(registry.AGENT_TYPES, "entry_points", lambda: [point])
    monkeypatch.setattr(registry.AGENT_TYPES, "registered", {})
    (tmp_path / "workflow.yaml").write_text(
        "workflow:\n  - {name: loud, type: shout, field: text}\n"
    )
    wf = relayflow.load_workflow(tmp_path / "workflow.yaml")
    assert "shout" in registry.known_types()

    async def main() -> relayflow.RunResult:
        async with relayflow.Runner(wf) as runner:
            return await runner.run({"text": "hello"})

    assert asyncio.run(main()).output == {"text": "HELLO"}
    sys.modules.pop("shout_plugin", None)


def test_an_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(relayflow.RelayflowError, match="unknown agent type 'nope'.*transform"):
        registry.agent_class("nope")


def test_a_plugin_that_is_not_an_agent_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "not_agent.py").write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry.AGENT_TYPES, "registered", {"thing": "not_agent:Thing"})
    with pytest.raises(relayflow.RelayflowError, match="not a relayflow Agent subclass"):
        registry.agent_class("thing")
    sys.modules.pop("not_agent", None)
