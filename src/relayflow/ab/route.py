"""Live traffic of a workflow with variants: one Runner per variant that gets traffic, each item
routed to its variant by `assign`, every variant's results merged into one stream.

Each variant's runs form their own batch, ``<batch>@<variant>``, so a variant's batch record
names the variant's workflow and ``relayflow resume --batch`` continues it like any batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relayflow.ab.assign import assign, routing_key
from relayflow.spec.variants import SEPARATOR, variant_workflow, weights

if TYPE_CHECKING:
    from relayflow.core.events import Consumer
    from relayflow.engine.batch import Item
    from relayflow.engine.runner import Runner, RunResult
    from relayflow.schema.workflow import Workflow

Items = Iterable["Item"] | AsyncIterable["Item"]
_END = object()


@dataclass(frozen=True, slots=True)
class Arm:
    """One variant that gets traffic: its name, share, batch id and runs at once."""

    variant: str
    share: float
    batch_id: str
    concurrency: int


def arms(workflow: Workflow, batch_id: str, concurrency: int) -> list[Arm]:
    """The variants with a share above 0; ``concurrency`` split by share (at least 1 each)."""
    variants = workflow.spec.variants
    return [
        Arm(v.name, share, f"{batch_id}{SEPARATOR}{v.name}", max(1, round(concurrency * share)))
        for v, share in zip(variants, weights(variants), strict=True)
        if share > 0
    ]


async def run_variants(
    workflow: Workflow,
    items: Items | None,
    *,
    store: Any,
    batch_id: str,
    concurrency: int = 4,
    consumers: Sequence[Consumer] = (),
    inputs_name: str | None = None,
    limit: int | None = None,
    max_bad_records: int | None = None,
) -> AsyncGenerator[tuple[str, RunResult], None]:
    """Run each item as the variant its key is assigned to; yield ``(variant, result)`` as runs
    end. ``items`` None reads the workflow's source agent (at most ``limit`` records). Bad
    records go to the first variant's batch, which stops past ``max_bad_records``."""
    from relayflow.engine.factory import build_runner

    chosen = arms(workflow, batch_id, concurrency)
    async with contextlib.AsyncExitStack() as stack:
        runners: dict[str, Runner] = {}
        for arm in chosen:
            runner = build_runner(
                variant_workflow(workflow, arm.variant), store=store, consumers=consumers
            )
            runners[arm.variant] = await stack.enter_async_context(runner)
        first = runners[chosen[0].variant]
        source = items if items is not None else _source(first, limit)
        queues = {arm.variant: asyncio.Queue[Any](maxsize=arm.concurrency) for arm in chosen}
        results: asyncio.Queue[Any] = asyncio.Queue()
        tasks = [asyncio.ensure_future(_route(workflow, source, queues, results))]
        for arm in chosen:
            tasks.append(
                asyncio.ensure_future(
                    _arm(
                        runners[arm.variant],
                        arm,
                        queues[arm.variant],
                        results,
                        inputs_name,
                        max_bad_records,
                    )
                )
            )
        try:
            running = len(chosen)
            while running:
                got = await results.get()
                if got is _END:
                    running -= 1
                elif isinstance(got, BaseException):
                    raise got
                else:
                    yield got
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _route(
    workflow: Workflow,
    source: Items,
    queues: Mapping[str, asyncio.Queue[Any]],
    results: asyncio.Queue[Any],
) -> None:
    """Put each item on the queue of its variant, then the end mark on every queue; an error
    reading the items goes to the results, where the consumer raises it. A bad record has no
    key to route by: the first variant's batch records it."""
    from relayflow.agents.formats import BadRecord

    variants = workflow.spec.variants
    evaluate = workflow.spec.evaluate
    first = next(iter(queues))
    try:
        async for record in _aiter(source):
            if isinstance(record, BadRecord):
                await queues[first].put(record)
                continue
            variant = assign(variants, routing_key(record, evaluate), salt=workflow.name)
            await queues[variant.name].put(record)
    except Exception as exc:
        results.put_nowait(exc)
        return
    for queue in queues.values():
        await queue.put(_END)


async def _arm(
    runner: Runner,
    arm: Arm,
    queue: asyncio.Queue[Any],
    results: asyncio.Queue[Any],
    inputs_name: str | None,
    max_bad_records: int | None = None,
) -> None:
    async def records() -> AsyncIterator[Item]:
        while (record := await queue.get()) is not _END:
            yield record

    batch = runner.run_batch(
        records(),
        concurrency=arm.concurrency,
        batch_id=arm.batch_id,
        inputs_name=inputs_name,
        max_bad_records=max_bad_records,
    )
    try:
        async for result in batch:
            results.put_nowait((arm.variant, result))
    except Exception as exc:  # handed to the consumer, which raises it
        results.put_nowait(exc)
    finally:
        close = getattr(batch, "aclose", None)
        if close is not None:
            await close()
        results.put_nowait(_END)


async def _aiter(items: Items) -> AsyncIterator[Item]:
    if isinstance(items, AsyncIterable):
        async for record in items:
            yield record
    else:
        for record in items:
            yield record


def _source(runner: Runner, limit: int | None) -> AsyncIterator[Item]:
    """The records of the workflow's source agent (every variant shares it), at most
    ``limit``."""
    from relayflow.engine.batch import source_agent, source_records

    return source_records(source_agent(runner), limit)
