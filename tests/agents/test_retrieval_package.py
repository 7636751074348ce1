"""``package://`` sources: data files shipped inside an installed package."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from relayflow.agents.base import BuildContext
from relayflow.agents.retrieval import RetrievalAgent, RetrievalConfig
from relayflow.errors import AgentError


def _agent(source: str, tmp_path: Path) -> RetrievalAgent:
    config = RetrievalConfig(name="load", type="retrieval", source=source, format="json")

    def no_provider(alias: str) -> object:
        raise AssertionError(alias)

    ctx = BuildContext(
        base_dir=tmp_path,
        workflow_file=None,
        get_provider=no_provider,  # type: ignore[arg-type]
    )
    return RetrievalAgent(config, ctx)


def test_reads_a_file_shipped_in_a_package(tmp_path: Path) -> None:
    agent = _agent(
        "package://jsonschema_specifications/schemas/draft202012/metaschema.json", tmp_path
    )

    async def first() -> dict[str, object]:
        async for record in agent.records():
            assert isinstance(record, dict)
            return record
        raise AssertionError("no record")

    record = asyncio.run(first())
    assert record["$id"] == "https://json-schema.org/draft/2020-12/schema"


def test_a_missing_package_is_a_clear_error(tmp_path: Path) -> None:
    agent = _agent("package://no_such_package_here/data.jsonl", tmp_path)

    async def first() -> None:
        async for _ in agent.records():
            pass

    with pytest.raises(AgentError, match="no installed package 'no_such_package_here'"):
        asyncio.run(first())
