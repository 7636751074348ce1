"""Batches: many runs of one workflow from one source, streamed with bounded concurrency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from relayflow.agents.base import SourceAgent
from relayflow.engine import events as ev
from relayflow.engine.ids import new_id
from relayflow.errors import RelayflowError

if TYPE_CHECKING:
    from relayflow.engine.runner import Runner, RunResult


async def run_batch(
    runner: Runner,
    items: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]] | None = None,
    *,
    concurrency: int = 8,
    batch_id: str | None = None,
    inputs_name: str | None = None,
) -> AsyncIterator[RunResult]:
    """Run one workflow per item (or per record of the plan's source), at most
    ``concurrency`` at once, yielding results as runs end. Memory stays flat: items are
    pulled only as slots free up. With an existing ``batch_id`` and a store, items that
    already ended are skipped and unfinished runs resume where they stopped."""
    if concurrency < 1:
        raise RelayflowError("concurrency must be at least 1")
    batch_id = batch_id or new_id()
    known: dict[str, tuple[str, str]] = {}
    if runner.store is not None:
        known = {key: (rid, status) for key, rid, status in runner.store.batch_runs(batch_id)}
    waits = runner.bus.emit(
        ev.BatchStarted(
            batch_id,
            runner.workflow.name,
            str(runner.workflow.file),
            inputs_name,
            concurrency,
            time.time(),
        )
    )
    if waits:
        await ev.settle(waits)
    running: set[asyncio.Task[RunResult]] = set()
    # Finished runs arrive through a queue: O(1) per run, where asyncio.wait over every
    # running task would cost O(concurrency) per finished run.
    finished: asyncio.Queue[asyncio.Task[RunResult]] = asyncio.Queue()
    count = 0
    status: Literal["finished", "cancelled", "failed"] = "finished"
    try:
        async for key, record in _keyed_items(runner, items):
            previous = known.get(key)
            if previous is not None and previous[1] in ("succeeded", "failed"):
                continue
            if previous is not None and previous[1] == "waiting_review":
                continue
            while len(running) >= concurrency:
                task = await finished.get()
                running.discard(task)
                count += 1
                yield task.result()
            if previous is not None:
                coro = runner.resume(previous[0])
            else:
                coro = runner.run(record, batch_id=batch_id, item_key=key)
            started = asyncio.ensure_future(coro)
            started.add_done_callback(finished.put_nowait)
            running.add(started)
        while running:
            task = await finished.get()
            running.discard(task)
            count += 1
            yield task.result()
    except BaseException:
        status = "cancelled"
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        raise
    finally:
        runner.bus.emit(ev.BatchFinished(batch_id, status, count, time.time()))


async def _keyed_items(
    runner: Runner, items: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]] | None
) -> AsyncIterator[tuple[str, Mapping[str, Any]]]:
    if items is None:
        plan = runner.plan
        if plan.source is None:
            raise RelayflowError(
                f"{runner.workflow.file}: the workflow has no source agent; "
                "give inputs (--input or --inputs)"
            )
        agent = plan.nodes[plan.source].agent
        assert isinstance(agent, SourceAgent)
        keyed = getattr(agent, "keyed_records", None)
        if keyed is not None:
            async for key, record in keyed():
                yield key, record
        else:
            index = 0
            async for record in agent.records():
                yield f"{index}", record
                index += 1
        return
    if isinstance(items, AsyncIterable):
        index = 0
        async for record in items:
            yield _item_key(record, index), record
            index += 1
    else:
        for index, record in enumerate(items):
            yield _item_key(record, index), record


def _item_key(record: Mapping[str, Any], index: int) -> str:
    key = record.get("id") if isinstance(record, Mapping) else None
    return f"{index}:{key}" if key is not None else str(index)
