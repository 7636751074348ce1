"""Batches: many runs of one workflow from one source, streamed with bounded concurrency; the
source's bad records recorded and skipped."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Coroutine,
    Iterable,
    Mapping,
)
from typing import TYPE_CHECKING, Any, Literal, Protocol

from relayflow.agents.base import SourceAgent
from relayflow.agents.formats import BadRecord
from relayflow.core import events as ev
from relayflow.core.ids import new_id
from relayflow.core.result import RunResult
from relayflow.errors import InputError, TooManyBadRecords
from relayflow.scrub import scrub

if TYPE_CHECKING:
    from relayflow.engine.plan import Plan
    from relayflow.schema.workflow import Workflow
    from relayflow.store.protocol import RunStore


class BatchRunner(Protocol):
    """What a batch needs of the runner that runs its items (engine/runner.py's Runner)."""

    workflow: Workflow
    store: RunStore | None
    bus: ev.EventBus

    @property
    def plan(self) -> Plan: ...

    def run(
        self,
        data: Mapping[str, Any],
        *,
        run_id: str | None = None,
        batch_id: str | None = None,
        item_key: str | None = None,
    ) -> Coroutine[Any, Any, RunResult]: ...

    def resume(self, run_id: str) -> Coroutine[Any, Any, RunResult]: ...


#: one item of a batch: a record to run, or one that could not be read
Item = Mapping[str, Any] | BadRecord
Items = Iterable[Item] | AsyncIterable[Item]


async def run_batch(
    runner: BatchRunner,
    items: Items | None = None,
    *,
    concurrency: int = 8,
    batch_id: str | None = None,
    inputs_name: str | None = None,
    max_bad_records: int | None = None,
) -> AsyncGenerator[RunResult, None]:
    """Run one workflow per item (or per record of the plan's source), at most
    ``concurrency`` at once, yielding results as runs end. Memory stays flat: items are
    pulled only as slots free up. With an existing ``batch_id`` and a store, items that
    already ended are skipped and unfinished runs resume where they stopped.

    A BadRecord item is recorded (a ``RecordRejected`` event: the store keeps it with the
    batch) and skipped, so a batch that meets it again on resume skips it again. Past
    ``max_bad_records`` of them the batch takes no new item, lets the runs in flight end,
    and raises TooManyBadRecords."""
    if concurrency < 1:
        raise InputError("concurrency must be at least 1")
    batch_id = batch_id or new_id()
    known: dict[str, tuple[str, str]] = {}
    if runner.store is not None:
        known = {key: (rid, status) for key, rid, status in runner.store.batch_runs(batch_id)}
    waits = runner.bus.emit(
        ev.BatchStarted(
            batch_id=batch_id,
            workflow=runner.workflow.name,
            workflow_file=str(runner.workflow.file),
            inputs=inputs_name,
            concurrency=concurrency,
            ts=time.time(),
        )
    )
    if waits:
        await ev.settle(waits)
    running: set[asyncio.Task[RunResult]] = set()
    #: runs started by this batch (``runner.run`` has recorded them as running), by task
    fresh: dict[asyncio.Task[RunResult], str] = {}
    finished = _Finished()
    count = 0
    bad = 0
    stopped: TooManyBadRecords | None = None
    status: Literal["finished", "cancelled", "failed"] = "finished"
    create_task = asyncio.get_running_loop().create_task

    def wanted(key: str) -> bool:
        previous = known.get(key)
        return previous is None or previous[1] not in ("succeeded", "failed", "waiting_review")

    def launch(key: str, record: Mapping[str, Any]) -> None:
        previous = known.get(key)
        if previous is not None:
            task = create_task(runner.resume(previous[0]))
        else:
            run_id = new_id()
            task = create_task(runner.run(record, run_id=run_id, batch_id=batch_id, item_key=key))
            fresh[task] = run_id
        task.add_done_callback(finished.add)
        running.add(task)

    def ended(task: asyncio.Task[RunResult]) -> RunResult:
        running.discard(task)
        fresh.pop(task, None)
        return task.result()

    async def reject(key: str, record: BadRecord) -> TooManyBadRecords | None:
        """Record a bad record; the error to stop with once there are too many."""
        nonlocal bad
        bad += 1
        waits = runner.bus.emit(
            ev.RecordRejected(
                batch_id=batch_id,
                item_key=key,
                location=record.location,
                # a reader's error may quote a credential (an HTTP error naming its token)
                reason=scrub(record.reason),
                excerpt=scrub(record.excerpt),
                ts=time.time(),
            )
        )
        if waits:
            await ev.settle(waits)
        if max_bad_records is None or bad <= max_bad_records:
            return None
        return TooManyBadRecords(
            f"the source of batch {batch_id} has more bad records than the limit of "
            f"{max_bad_records} (the last: {record.message}): the batch stopped"
        )

    try:
        if items is not None and not isinstance(items, AsyncIterable):
            # a plain iterable is read here, without an async generator step per item
            for index, record in enumerate(items):
                if isinstance(record, BadRecord):
                    stopped = await reject(str(index), record)
                    if stopped is not None:
                        break
                    continue
                key = _item_key(record, index)
                if known and not wanted(key):
                    continue
                while len(running) >= concurrency:
                    task = finished.pop() or await finished.next()
                    count += 1
                    yield ended(task)
                launch(key, record)
        else:
            async for key, record in _keyed_items(runner, items):
                if isinstance(record, BadRecord):
                    stopped = await reject(key, record)
                    if stopped is not None:
                        break
                    continue
                if not wanted(key):
                    continue
                while len(running) >= concurrency:
                    task = finished.pop() or await finished.next()
                    count += 1
                    yield ended(task)
                launch(key, record)
        while running:
            task = finished.pop() or await finished.next()
            count += 1
            yield ended(task)
        if stopped is not None:
            status = "failed"
    except BaseException:
        status = "cancelled"
        await _cancel(runner, running, fresh)
        raise
    finally:
        runner.bus.emit(
            ev.BatchFinished(batch_id=batch_id, status=status, runs=count, ts=time.time())
        )
    if stopped is not None:
        raise stopped


async def _cancel(
    runner: BatchRunner,
    running: set[asyncio.Task[RunResult]],
    fresh: dict[asyncio.Task[RunResult], str],
) -> None:
    """Cancel the runs in flight. A run whose task never got to start (launched in the same
    turn of the loop as the error or the Ctrl-C) cannot record its own end: it is recorded as
    cancelled here, so that no run is left ``running``."""
    unstarted = [fresh[task] for task in running if task in fresh and _unstarted(task)]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    now = time.time()
    for run_id in unstarted:
        runner.bus.emit(
            ev.RunFinished(
                run_id=run_id, status="cancelled", output=None, error="cancelled", ts=now
            )
        )


def _unstarted(task: asyncio.Task[RunResult]) -> bool:
    coro = task.get_coro()
    return inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED


class _Finished:
    """Runs that ended, in the order they ended. Cheaper than an ``asyncio.Queue``: a run's
    done callback only appends, and a future is made only when the batch must wait."""

    __slots__ = ("_ended", "_waiter")

    def __init__(self) -> None:
        self._ended: deque[asyncio.Task[RunResult]] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def add(self, task: asyncio.Task[RunResult]) -> None:
        self._ended.append(task)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pop(self) -> asyncio.Task[RunResult] | None:
        return self._ended.popleft() if self._ended else None

    async def next(self) -> asyncio.Task[RunResult]:
        while not self._ended:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._ended.popleft()


def source_agent(
    runner: BatchRunner, fix: str = "give items with --input JSON or --inputs FILE"
) -> SourceAgent:
    """The plan's batch source (a retrieval agent with no upstream), or a one-line error."""
    plan = runner.plan
    if plan.source is None:
        raise InputError(
            f"{runner.workflow.file}: the workflow has no source agent (a retrieval agent with "
            f"no upstream); {fix}"
        )
    agent = plan.nodes[plan.source].agent
    assert isinstance(agent, SourceAgent)  # noqa: S101 - invariant: a plan's source is a SourceAgent
    return agent


async def source_records(agent: SourceAgent, limit: int | None = None) -> AsyncIterator[Item]:
    """At most ``limit`` records of ``agent`` (bad ones count: they hold their place), its
    stream closed as soon as they are read (not when it is garbage-collected)."""
    if limit is not None and limit <= 0:
        return
    count = 0
    records = agent.records()
    try:
        async for record in records:
            yield record
            count += 1
            if limit is not None and count >= limit:
                return
    finally:
        close = getattr(records, "aclose", None)
        if close is not None:
            await close()


async def _keyed_items(
    runner: BatchRunner, items: AsyncIterable[Item] | None
) -> AsyncIterator[tuple[str, Item]]:
    """The keyed records of an async iterable, or of the plan's source when ``items`` is None
    (a plain iterable is read by ``run_batch`` itself)."""
    if items is None:
        agent = source_agent(runner)
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
    index = 0
    async for record in items:
        yield _item_key(record, index), record
        index += 1


def _item_key(record: Item, index: int) -> str:
    key = record.get("id") if type(record) is dict or isinstance(record, Mapping) else None
    return f"{index}:{key}" if key is not None else str(index)


async def only_keys(
    items: Iterable[Item] | AsyncIterable[Item],
    keys: frozenset[str],
    key_field: str,
    limit: int | None = None,
) -> AsyncIterator[Item]:
    """The items whose ``key_field`` is one of ``keys``, at most ``limit`` of them (bad
    records pass: the batch records them)."""
    if limit is not None and limit <= 0:
        return
    taken = 0

    async def each() -> AsyncIterator[Item]:
        if isinstance(items, AsyncIterable):
            async for item in items:
                yield item
        else:
            for item in items:
                yield item

    async for item in each():
        if not isinstance(item, Mapping) or str(item.get(key_field)) in keys:
            yield item
            taken += 1
            if limit is not None and taken >= limit:
                return
