"""Batches over real stores: a source that fails mid-way leaves no run ``running``, bad records
are recorded with the batch and skipped (again on resume), and a limit on them stops the batch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import relayflow
from relayflow.agents.formats import BadRecord
from relayflow.engine.batch import Item
from relayflow.errors import AgentError, TooManyBadRecords
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
    max_bad_records: int | None = None,
) -> list[relayflow.RunResult]:
    async def main() -> list[relayflow.RunResult]:
        async with relayflow.Runner(workflow, store=store_url) as runner:
            batch = runner.run_batch(
                items, concurrency=4, batch_id=batch_id, max_bad_records=max_bad_records
            )
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


def _bad(n: int) -> BadRecord:
    return BadRecord(f"items.jsonl:{n}", "not valid JSON: Expecting value — fix it", "{oops")


def test_bad_records_are_kept_with_the_batch_and_skipped_and_later_keys_keep_their_place(
    workflow: relayflow.Workflow, store_url: str
) -> None:
    items: list[Item] = [{"id": 0}, _bad(2), {"id": 2}, _bad(4), {"n": 4}]
    results = _drive(workflow, store_url, items, "b2")
    assert sorted(r.item_key or "" for r in results) == ["0:0", "2:2", "4"]
    assert {r.status for r in results} == {"succeeded"}
    store = SqlStore(store_url)
    try:
        bad = store.bad_records("b2")
        batch = store.get_batch("b2")
    finally:
        store.close()
    assert [(b.item_key, b.location, b.excerpt) for b in bad] == [
        ("1", "items.jsonl:2", "{oops"),
        ("3", "items.jsonl:4", "{oops"),
    ]
    assert batch is not None and batch.status == "finished"

    # resumed with the same source: the bad records are met again, recorded once, skipped
    again = _drive(workflow, store_url, items, "b2")
    assert again == []
    store = SqlStore(store_url)
    try:
        assert [b.location for b in store.bad_records("b2")] == ["items.jsonl:2", "items.jsonl:4"]
    finally:
        store.close()

    # fixed in place: the record runs in its own place, and is no longer listed as bad
    fixed: list[Item] = [{"id": 0}, {"id": 1}, {"id": 2}, _bad(4), {"n": 4}]
    [result] = _drive(workflow, store_url, fixed, "b2")
    assert (result.item_key, result.status) == ("1:1", "succeeded")
    store = SqlStore(store_url)
    try:
        assert [b.location for b in store.bad_records("b2")] == ["items.jsonl:4"]
        assert store.batch_counts(["b2"]) == {"b2": {"succeeded": 4, "bad": 1}}
    finally:
        store.close()


def test_past_max_bad_records_the_batch_stops_after_the_runs_in_flight(
    workflow: relayflow.Workflow, store_url: str
) -> None:
    items: list[Item] = [
        *({"id": i} for i in range(5)),
        _bad(6),
        {"id": 6},
        _bad(8),
        *({"id": i} for i in range(8, 20)),
    ]
    with pytest.raises(TooManyBadRecords, match=r"more bad records than the limit of 1 \(the "):
        _drive(workflow, store_url, items, "b3", max_bad_records=1)
    statuses = _statuses(store_url, "b3")
    # every run taken before the stop ended (none left running), none after it was started
    assert statuses == {f"{i}:{i}": "succeeded" for i in (0, 1, 2, 3, 4, 6)}
    store = SqlStore(store_url)
    try:
        batch = store.get_batch("b3")
        assert batch is not None and batch.status == "failed"
    finally:
        store.close()

    results = _drive(workflow, store_url, items, "b3", max_bad_records=2)  # resumed
    assert len(results) == 12
    assert set(_statuses(store_url, "b3").values()) == {"succeeded"}
