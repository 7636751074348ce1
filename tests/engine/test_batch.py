"""Batches over real stores: a source that fails mid-way leaves no run ``running``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import relayflow
from relayflow.errors import AgentError
from relayflow.store.sql_store import SqlStore
from tests.engine.helpers import write_workflow

#: waits a little (cancellably), so that several runs are in flight at once
WAIT = """
import asyncio

async def transform(record):
    await asyncio.sleep(0.05)
    return {**record, "done": True}
"""

WORKFLOW = "name: batchy\nworkflow:\n  - {name: wait, type: transform, script: wait.py}\n"


@pytest.fixture
def workflow(tmp_path: Path) -> relayflow.Workflow:
    return write_workflow(tmp_path, WORKFLOW, {"wait.py": WAIT})


def _statuses(store_url: str, batch_id: str) -> dict[str, str]:
    store = SqlStore(store_url)
    try:
        return {key: status for key, _run, status in store.batch_runs(batch_id)}
    finally:
        store.close()


def _drive(
    workflow: relayflow.Workflow,
    store_url: str,
    items: Any,
    batch_id: str,
) -> list[relayflow.RunResult]:
    async def main() -> list[relayflow.RunResult]:
        async with relayflow.Runner(workflow, store=store_url) as runner:
            batch = runner.run_batch(items, concurrency=4, batch_id=batch_id)
            return [result async for result in batch]

    return asyncio.run(main())


def test_a_source_that_fails_mid_batch_leaves_no_run_running(
    workflow: relayflow.Workflow, store_url: str
) -> None:
    def items() -> Iterator[Mapping[str, Any]]:
        # the runs of these are launched in the very turn of the loop that meets the error,
        # so their tasks never start
        yield from ({"id": i} for i in range(3))
        raise AgentError("items.jsonl: the disk went away")

    with pytest.raises(AgentError, match="the disk went away"):
        _drive(workflow, store_url, items(), "b1")
    statuses = _statuses(store_url, "b1")
    assert sorted(statuses.values()) == ["cancelled"] * 3
