"""Live run events for Server-Sent Events: a consumer on every runner's bus that fans each event
out to the subscribers of its run (each event's JSON shape is core/events.py's ``event_json``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from relayflow.core import events as ev

#: event type → the SSE ``event:`` name
NAMES: dict[type[Any], str] = {
    ev.RunStarted: "run_started",
    ev.StepStarted: "step_started",
    ev.StepFinished: "step_finished",
    ev.StepFailed: "step_failed",
    ev.StepEscalated: "step_escalated",
    ev.StepCancelled: "step_cancelled",
    ev.RunFinished: "run_finished",
    ev.ReviewDecided: "review_decided",
}

#: a subscriber that falls this far behind is cut off rather than let memory grow
QUEUE_LIMIT = 10_000


class EventHub:
    """Delivers each run's events to the queues subscribed to that run."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[ev.Event | None]]] = {}

    def handle(self, event: ev.Event) -> None:
        run_id = getattr(event, "run_id", None)
        if run_id is None or type(event) not in NAMES:
            return
        for queue in self._subscribers.get(run_id, ()):
            if queue.qsize() >= QUEUE_LIMIT:
                queue.put_nowait(None)  # the stream ends; the client reconnects and replays
            else:
                queue.put_nowait(event)

    @contextmanager
    def subscribe(self, run_id: str) -> Iterator[asyncio.Queue[ev.Event | None]]:
        queue: asyncio.Queue[ev.Event | None] = asyncio.Queue()
        self._subscribers.setdefault(run_id, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._subscribers.get(run_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._subscribers[run_id]
