"""The one event stream: every fact about a run, in order, for every consumer.

``Event`` (the union of the classes below) and ``Consumer`` (the protocol of whatever reads
them) are public: ``from relayflow import Event, Consumer``. A consumer is any object with
``handle(event)``; it is attached to a runner through ``relayflow.build_runner(consumers=…)``
or, for a consumer type in the registry (relayflow/consumers/), through the workflow's
``consumers:`` section. The store, the progress display, telemetry and the benchmarks all read
these events; nothing else reaches into the runner.

Events are immutable named tuples, always built by keyword (``StepStarted(run_id=…, step=…,
attempt=…, ts=…)``): they are built on the hot path of every step, and a named tuple costs a
third of a frozen dataclass to create. A field may be added at the end, with a default;
consumers read fields by name, never by position.

A consumer's ``handle`` may return an awaitable: the runner awaits it before it lets a finished
step's dependents start, which is how the store makes each step durable (and how one commit
covers every step that finished meanwhile). ``handle`` runs on the runner's event loop, inside
the step that emitted the event: it must be quick, and it must not raise (an exception fails
the run).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, Protocol

from relayflow.core.result import Usage

RunStatus = Literal["running", "waiting_review", "succeeded", "failed", "cancelled"]
Actor = Literal["agent", "human"]


class RunStarted(NamedTuple):
    run_id: str
    workflow: str
    workflow_version: str
    input: Mapping[str, Any]
    ts: float
    batch_id: str | None = None
    item_key: str | None = None


class StepStarted(NamedTuple):
    run_id: str
    step: str
    attempt: int
    ts: float


class StepFinished(NamedTuple):
    run_id: str
    step: str
    agent_type: str
    attempt: int
    started: float
    ended: float
    output: Mapping[str, Any]
    confidence: float | None
    usage: Usage
    versions: Mapping[str, str]
    flags: tuple[str, ...] = ()
    actor: Actor = "agent"
    #: the result came from the step cache: nothing ran, nothing was spent
    cached: bool = False


class StepFailed(NamedTuple):
    run_id: str
    step: str
    attempt: int
    error: str
    will_retry: bool
    ts: float
    usage: Usage = Usage()


class StepEscalated(NamedTuple):
    """A step asked for a person: the run parks as ``waiting_review`` until a decision."""

    run_id: str
    step: str
    agent_type: str
    workflow: str
    reason: str
    input: Mapping[str, Any]
    output: Mapping[str, Any]
    confidence: float | None
    usage: Usage
    versions: Mapping[str, str]
    ts: float


class StepCancelled(NamedTuple):
    run_id: str
    step: str
    ts: float


class RunFinished(NamedTuple):
    run_id: str
    status: RunStatus
    output: Mapping[str, Any] | None
    error: str | None
    ts: float


class ReviewDecided(NamedTuple):
    """A person decided an escalated step; the decision resumes the run and becomes a label."""

    run_id: str
    step: str
    decision: Literal["approve", "correct"]
    output: Mapping[str, Any]
    reviewer: str
    ts: float
    workflow: str = ""
    item_key: str | None = None


class BatchStarted(NamedTuple):
    batch_id: str
    workflow: str
    workflow_file: str
    inputs: str | None
    concurrency: int
    ts: float


class RecordRejected(NamedTuple):
    """A record of a batch's source that could not become a run; it holds ``item_key``'s place,
    ``location`` is ``file:line`` (or ``file#n``), ``excerpt`` the start of its text."""

    batch_id: str
    item_key: str
    location: str
    reason: str
    excerpt: str
    ts: float


class BatchFinished(NamedTuple):
    batch_id: str
    status: Literal["finished", "cancelled", "failed"]
    runs: int
    ts: float


class BudgetAlert(NamedTuple):
    """A budget limit of ``workflow`` crossed its soft share (``kind`` "soft") or refused a
    model call (``kind`` "hard"; ``first`` is False for later refusals in the same period)."""

    workflow: str
    scope: str  # workflow, team or token
    subject: str
    period: str  # day, month or total
    span: str  # the period it happened in: 2026-11-25, 2026-11, all
    kind: Literal["soft", "hard"]
    message: str
    first: bool
    ts: float


Event = (
    RunStarted
    | StepStarted
    | StepFinished
    | StepFailed
    | StepEscalated
    | StepCancelled
    | RunFinished
    | ReviewDecided
    | BatchStarted
    | BatchFinished
    | RecordRejected
    | BudgetAlert
)


#: each event's name where it leaves the process (JSON lines, Server-Sent Events)
EVENT_NAMES: Mapping[type[Any], str] = {
    RunStarted: "run_started",
    StepStarted: "step_started",
    StepFinished: "step_finished",
    StepFailed: "step_failed",
    StepEscalated: "step_escalated",
    StepCancelled: "step_cancelled",
    RunFinished: "run_finished",
    ReviewDecided: "review_decided",
    BatchStarted: "batch_started",
    BatchFinished: "batch_finished",
    RecordRejected: "record_rejected",
    BudgetAlert: "budget_alert",
}


def event_json(event: Event) -> dict[str, Any]:
    """The event's fields as plain JSON values (usage as an object, tuples as lists)."""
    out: dict[str, Any] = {}
    for key, value in event._asdict().items():
        if key == "usage":
            value = dataclasses.asdict(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        out[key] = value
    return out


class Consumer(Protocol):
    """Whatever reads the event stream: ``handle`` gets every event of the runner it is attached
    to, in order. It returns None, or an awaitable that the runner awaits before the run goes
    on (a durable consumer: the store)."""

    def handle(self, event: Event) -> Awaitable[None] | None: ...


class EventBus:
    """Delivers each event to every consumer, in subscription order. ``consumers`` is the
    list itself (read it, change it through subscribe/unsubscribe): the runner's hot path
    tests it to skip building events nobody reads."""

    __slots__ = ("consumers",)

    def __init__(self, consumers: list[Consumer] | None = None) -> None:
        self.consumers: list[Consumer] = list(consumers or [])

    def subscribe(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)

    def unsubscribe(self, consumer: Consumer) -> None:
        self.consumers.remove(consumer)

    def __bool__(self) -> bool:
        """Whether anyone listens: the runner skips building hot-path events nobody reads."""
        return bool(self.consumers)

    def emit(self, event: Event) -> Sequence[Awaitable[None]]:
        """Deliver ``event``; return what durable consumers ask the caller to await."""
        pending: list[Awaitable[None]] | None = None
        for consumer in self.consumers:
            waiting = consumer.handle(event)
            if waiting is not None:
                if pending is None:
                    pending = [waiting]
                else:
                    pending.append(waiting)
        return pending or ()


async def settle(waits: Sequence[Awaitable[None]]) -> None:
    """Wait for what durable consumers returned from ``emit``."""
    if len(waits) == 1:
        await waits[0]
    else:
        await asyncio.gather(*waits)
