"""Drive a batch (or one run) through the runner under ``asyncio.run``, with the progress
consumer on the event stream, and turn a first Ctrl-C or SIGTERM into a clean stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relayflow.cli.common import Stop, run_async
from relayflow.cli.inputs import file_items, source_items
from relayflow.cli.output import UserError, console

if TYPE_CHECKING:
    from relayflow.cli.progress import Summary
    from relayflow.engine.batch import Item
    from relayflow.engine.runner import Runner, RunResult
    from relayflow.schema.workflow import Workflow

#: what a batch record's ``inputs`` says when its one item came from ``--input``
INLINE_INPUT = "--input"

OnResult = Callable[["RunResult"], None]


@dataclass(frozen=True, slots=True)
class BatchJob:
    """Which items to run and how: ``single`` (one ``--input``), ``inputs`` (a file), or the
    workflow's source; ``resume`` lists runs of the batch to continue by id first."""

    workflow: Workflow
    store: str
    batch_id: str
    concurrency: int = 4
    single: Mapping[str, Any] | None = None
    inputs: str | None = None
    use_source: bool = False
    limit: int | None = None
    resume: Sequence[str] = ()
    #: stop taking items after this many bad records (None: no limit)
    max_bad_records: int | None = None
    #: route each item to the variant its key is assigned to (ab/route.py), one batch per
    #: variant: ``<batch_id>@<variant>``
    split_variants: bool = False
    #: run only the items whose ``key_field`` is one of these (``--split``), then ``limit``
    keys: frozenset[str] | None = None
    key_field: str = "id"

    @property
    def inputs_name(self) -> str | None:
        return INLINE_INPUT if self.single is not None else self.inputs


@dataclass(frozen=True, slots=True)
class Outcome:
    summary: Summary
    cancelled: bool
    #: the signal that cancelled it (Ctrl-C or SIGTERM), for the exit status
    stop: Stop = field(default_factory=Stop)
    #: why the batch stopped before its end (too many bad records, a source that broke off)
    error: str | None = None


def new_batch_id() -> str:
    from relayflow.core.ids import new_id

    return new_id()


def execute(
    job: BatchJob, on_result: OnResult, *, total: int | None = None, only_run: str | None = None
) -> Outcome:
    """Run ``job`` to the end (or to the first Ctrl-C or SIGTERM); ``only_run`` resumes one
    run instead."""
    from relayflow.cli.progress import BatchProgress

    progress = BatchProgress(total=total, console=console(stderr=True))
    progress.batch_id = job.batch_id or None
    stop = Stop()

    from relayflow.errors import RelayflowError, SpecError

    error: list[str] = []

    async def main() -> bool:
        try:
            if only_run is not None:
                await _resume_one(job, only_run, progress, on_result)
            else:
                await _drive(job, progress, on_result)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return True
        except (RelayflowError, UserError) as exc:
            if isinstance(exc, SpecError) or not progress.seen:
                raise  # no item was read: no summary to show
            # the runs in flight were recorded as they ended: show the summary, then why
            error.append(" ".join(str(exc).split()))
        return False

    with progress:
        cancelled = run_async(main(), stop)
    return Outcome(progress.summary(), cancelled, stop, error[0] if error else None)


async def _resume_one(job: BatchJob, run_id: str, progress: Any, on_result: OnResult) -> None:
    from relayflow.engine.factory import build_runner

    async with build_runner(job.workflow, store=job.store, consumers=[progress]) as runner:
        on_result(await runner.resume(run_id))


async def _drive(job: BatchJob, progress: Any, on_result: OnResult) -> None:
    from relayflow.engine.factory import build_runner

    if job.split_variants:
        await _drive_variants(job, progress, on_result)
        return
    async with build_runner(job.workflow, store=job.store, consumers=[progress]) as runner:
        await _each(_resume_runs(runner, job.resume, job.concurrency), on_result)
        batch = runner.run_batch(
            _items(job, runner),
            concurrency=job.concurrency,
            batch_id=job.batch_id,
            inputs_name=job.inputs_name,
            max_bad_records=job.max_bad_records,
        )
        await _each(batch, on_result)


async def _drive_variants(job: BatchJob, progress: Any, on_result: OnResult) -> None:
    from relayflow.ab.route import run_variants

    items: Iterable[Item] | None = None
    if job.single is not None:
        items = [job.single]
    elif job.inputs is not None:
        items = file_items(job.inputs, job.limit)
    results = run_variants(
        job.workflow,
        items,
        store=job.store,
        batch_id=job.batch_id,
        concurrency=job.concurrency,
        consumers=[progress],
        inputs_name=job.inputs_name,
        limit=job.limit,
        max_bad_records=job.max_bad_records,
    )
    try:
        async for _variant, result in results:
            on_result(result)
    finally:
        await results.aclose()


async def _each(results: AsyncIterator[RunResult], on_result: OnResult) -> None:
    """Hand each result on; if that fails, stop the runs at once, while the store is open."""
    try:
        async for result in results:
            on_result(result)
    finally:
        close = getattr(results, "aclose", None)
        if close is not None:
            await close()


def _items(job: BatchJob, runner: Runner) -> Iterable[Item] | AsyncIterator[Item]:
    if job.single is not None:
        return [job.single]
    limit = job.limit if job.keys is None else None
    items: Iterable[Item] | AsyncIterator[Item] = []
    if job.inputs is not None:
        items = file_items(job.inputs, limit)
    elif job.use_source:
        items = source_items(runner, limit)
    if job.keys is None:
        return items
    from relayflow.engine.batch import only_keys

    return only_keys(items, job.keys, job.key_field, job.limit)


async def _resume_runs(
    runner: Runner, run_ids: Sequence[str], concurrency: int
) -> AsyncIterator[RunResult]:
    """Resume these runs, at most ``concurrency`` at once, yielding each as it ends."""
    pending = iter(run_ids)
    running: set[asyncio.Task[RunResult]] = set()
    try:
        for run_id in pending:
            if len(running) >= concurrency:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    yield task.result()
            running.add(asyncio.ensure_future(runner.resume(run_id)))
        while running:
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                yield task.result()
    except BaseException:  # Ctrl-C, or the consumer stopped: stop the runs, then re-raise
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        raise


def runs_to_resume(store: Any, batch_id: str, *, unfinished: bool) -> list[str]:
    """The batch's failed runs, and with ``unfinished`` also those stopped mid-way (needed when
    no item source can be read again to find them)."""
    wanted = {"failed", "running", "cancelled"} if unfinished else {"failed"}
    return [run_id for _key, run_id, status in store.batch_runs(batch_id) if status in wanted]
