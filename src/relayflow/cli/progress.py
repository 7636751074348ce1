"""The live progress of a batch, driven only by the event stream, and its closing summary."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from relayflow.cli.output import plural, seconds
from relayflow.core import events as ev
from relayflow.core.money import money

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

#: how many failed runs the summary names
SHOWN_FAILURES = 5

Outcome = Literal["running", "succeeded", "failed", "waiting_review", "cancelled"]


class RunningMedian:
    """The median of a growing list in O(log n) per value (two heaps)."""

    __slots__ = ("_high", "_low")

    def __init__(self) -> None:
        self._low: list[float] = []  # max-heap of the lower half, negated
        self._high: list[float] = []  # min-heap of the upper half

    def add(self, value: float) -> None:
        if self._low and value > -self._low[0]:
            heapq.heappush(self._high, value)
        else:
            heapq.heappush(self._low, -value)
        if len(self._low) > len(self._high) + 1:
            heapq.heappush(self._high, -heapq.heappop(self._low))
        elif len(self._high) > len(self._low):
            heapq.heappush(self._low, -heapq.heappop(self._high))

    def value(self) -> float | None:
        if not self._low:
            return None
        if len(self._low) > len(self._high):
            return -self._low[0]
        return (-self._low[0] + self._high[0]) / 2


@dataclass(frozen=True, slots=True)
class Failure:
    run_id: str
    item_key: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Bad:
    """A bad record of the batch's source, as the summary shows it."""

    location: str
    reason: str


@dataclass(frozen=True, slots=True)
class Summary:
    """What a batch (or one run) came to, counted from its events."""

    batch_id: str | None
    runs: int
    succeeded: int
    failed: int
    waiting_review: int
    cancelled: int
    median_ttr: float | None
    p95_ttr: float | None
    tokens: int
    cost: float
    failures: tuple[Failure, ...]
    #: records of the source that could not become runs (recorded with the batch, skipped)
    bad_records: int = 0
    bad: tuple[Bad, ...] = ()


class _Live:
    __slots__ = ("item_key", "started", "status")

    def __init__(self, started: float, item_key: str | None) -> None:
        self.started = started
        self.item_key = item_key
        self.status: Outcome = "running"


class LiveBar:
    """A transient Rich progress bar, shown only on a terminal: the part every progress consumer
    shares. Subclasses call ``_start`` in ``__enter__`` and ``_show`` when their counts change."""

    _console: Console | None
    _progress: Progress | None = None
    _task: TaskID | None = None

    def _start(self, description: str, total: int | None, stats: str, *, spinner: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = [
            *([SpinnerColumn()] if spinner else []),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}", markup=False),
            TimeElapsedColumn(),
        ]
        self._progress = Progress(
            *columns,
            console=self._console,
            transient=True,
            disable=self._console is None or not self._console.is_terminal,
        )
        self._task = self._progress.add_task(description, total=total, stats=stats)
        self._progress.start()

    def _show(self, completed: int, stats: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=completed, stats=stats)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._progress = None
        self._task = None


class BatchProgress(LiveBar):
    """An event consumer: counts runs as they start, park and end, and shows a Rich progress
    bar while used as a context manager (only on a terminal)."""

    def __init__(self, *, total: int | None = None, console: Console | None = None) -> None:
        self.total = total
        self.batch_id: str | None = None
        self._console = console
        self._live: dict[str, _Live] = {}
        self._counts: dict[Outcome, int] = dict.fromkeys(
            ("running", "succeeded", "failed", "waiting_review", "cancelled"), 0
        )
        self._ttrs: list[float] = []
        self._median = RunningMedian()
        self._tokens = 0
        self._cost = 0.0
        self._failures: list[Failure] = []
        self._bad_count = 0
        self._bad: list[Bad] = []

    # ---- the consumer ----------------------------------------------------------------------

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepFinished | ev.StepFailed | ev.StepEscalated):
            usage = event.usage
            self._tokens += usage.input_tokens + usage.output_tokens
            self._cost += usage.cost
            if isinstance(event, ev.StepEscalated):
                self._move(event.run_id, "waiting_review")
            return
        if isinstance(event, ev.RunStarted):
            previous = self._live.get(event.run_id)
            if previous is not None:
                self._counts[previous.status] -= 1
            self._live[event.run_id] = _Live(event.ts, event.item_key)
            self._counts["running"] += 1
        elif isinstance(event, ev.RunFinished):
            self._finish(event)
        elif isinstance(event, ev.BatchStarted):
            self.batch_id = event.batch_id
        elif isinstance(event, ev.RecordRejected):
            self._bad_count += 1
            if len(self._bad) < SHOWN_FAILURES:
                self._bad.append(Bad(event.location, event.reason))
        else:
            return
        self._refresh()

    def _move(self, run_id: str, status: Outcome) -> None:
        live = self._live.get(run_id)
        if live is None or live.status == status:
            return
        self._counts[live.status] -= 1
        self._counts[status] += 1
        live.status = status
        self._refresh()

    def _finish(self, event: ev.RunFinished) -> None:
        live = self._live.pop(event.run_id, None)
        if live is None:
            return
        self._counts[live.status] -= 1
        status: Outcome = event.status if event.status != "running" else "failed"
        self._counts[status] += 1
        if status in ("succeeded", "failed"):
            ttr = max(0.0, event.ts - live.started)
            self._ttrs.append(ttr)
            self._median.add(ttr)
        if status == "failed" and len(self._failures) < SHOWN_FAILURES:
            self._failures.append(Failure(event.run_id, live.item_key, event.error))

    # ---- what it shows ---------------------------------------------------------------------

    @property
    def seen(self) -> bool:
        """Whether any item was read: a run started or a bad record met."""
        return bool(self._live or self.done or self._bad_count)

    @property
    def done(self) -> int:
        c = self._counts
        return c["succeeded"] + c["failed"] + c["waiting_review"] + c["cancelled"]

    def stats_text(self) -> str:
        c = self._counts
        median = self._median.value()
        text = f"ok {c['succeeded']}  failed {c['failed']}  review {c['waiting_review']}"
        if self._bad_count:
            text += f"  bad {self._bad_count}"
        return text + (f"  median TTR {seconds(median)}" if median is not None else "")

    def summary(self) -> Summary:
        c = self._counts
        ordered = sorted(self._ttrs)
        p95 = ordered[max(0, -(-len(ordered) * 95 // 100) - 1)] if ordered else None
        return Summary(
            batch_id=self.batch_id,
            runs=self.done + c["running"],
            succeeded=c["succeeded"],
            failed=c["failed"],
            waiting_review=c["waiting_review"],
            cancelled=c["cancelled"],
            median_ttr=self._median.value(),
            p95_ttr=p95,
            tokens=self._tokens,
            cost=self._cost,
            failures=tuple(self._failures),
            bad_records=self._bad_count,
            bad=tuple(self._bad),
        )

    def _refresh(self) -> None:
        self._show(self.done, self.stats_text())

    def __enter__(self) -> BatchProgress:
        self._start("runs", self.total, self.stats_text(), spinner=True)
        return self


def render_summary(
    summary: Summary, console: Console, *, limit: int | None = None, store: str | None = None
) -> None:
    """The closing table of a batch, the runs that failed, and how to resume it; ``store`` is
    named in the hints when it is not the default one."""
    from rich.table import Table

    table = Table(show_header=False)
    table.add_column("what", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    columns = {
        "runs": str(summary.runs),
        "succeeded": str(summary.succeeded),
        "failed": str(summary.failed),
        "escalated": str(summary.waiting_review),
        "cancelled": str(summary.cancelled),
        "median TTR": seconds(summary.median_ttr),
        "p95 TTR": seconds(summary.p95_ttr),
        "tokens": f"{summary.tokens:,}",
        "cost": money(summary.cost),
        "bad records": str(summary.bad_records),
    }
    if not summary.cancelled:
        del columns["cancelled"]
    if not summary.bad_records:
        del columns["bad records"]
    for name, value in columns.items():
        table.add_row(name, value)
    console.print(table)

    def say(line: str) -> None:
        console.print(line, markup=False, soft_wrap=True)

    for failure in summary.failures:
        item = f" (item {failure.item_key})" if failure.item_key is not None else ""
        say(f"failed: run {failure.run_id}{item}: {failure.error}")
    if summary.failed > len(summary.failures):
        more = plural(summary.failed - len(summary.failures), "more failed run")
        say(f"… and {more}: relayflow runs list --status failed")
    if summary.waiting_review:
        waiting = plural(summary.waiting_review, "run")
        say(f"{waiting} waiting for review: relayflow review list{store_option(store)}")
    for bad in summary.bad:
        say(f"bad record: {bad.location}: {bad.reason}")
    if summary.bad_records:
        records = plural(summary.bad_records, "bad record")
        where = f": relayflow batches show {summary.batch_id}" if summary.batch_id else ""
        say(f"{records} skipped (not run, kept with the batch){where}")
    if summary.batch_id:
        say(
            f"batch {summary.batch_id}: resume or retry with {resume_hint(summary.batch_id, limit)}"
        )


def store_option(store: str | None) -> str:
    """`` --store S`` for a store other than the default (what a hint must repeat)."""
    from relayflow.cli.common import store_location

    if store is None or store == store_location(None):
        return ""
    return f" --store {store}"


def resume_hint(batch_id: str, limit: int | None = None) -> str:
    return f"relayflow resume --batch {batch_id}" + (f" --limit {limit}" if limit else "")
