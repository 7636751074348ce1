"""Route: a run's events as Server-Sent Events (recorded steps first, then live, until the
run ends)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from sse_starlette.sse import EventSourceResponse

from relayflow.server.deps import COMMON, NOT_FOUND, Caller, Svc
from relayflow.server.runs import RunId
from relayflow.text import clean

router = APIRouter(tags=["runs"], responses=COMMON)

STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`text/event-stream`: events `run_started`, `step_started`, "
        "`step_finished`, `step_failed`, `step_escalated`, `step_cancelled`, "
        "`review_decided`, `run_finished`; each `data:` is one JSON object.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **NOT_FOUND,
}


@router.get(
    "/v1/runs/{run_id}/events",
    response_class=EventSourceResponse,
    responses=STREAM,
    summary="Stream a run's events (Server-Sent Events)",
)
async def events(run_id: RunId, svc: Svc, token: Caller) -> EventSourceResponse:
    stream = await svc.run_events(token, run_id)

    async def messages() -> AsyncIterator[dict[str, str]]:
        async for name, data in stream:
            # live events come straight from the runners: a model's lone surrogate is
            # replaced here as the store's reads replace it
            yield {"event": name, "data": json.dumps(clean(data), default=str)}

    return EventSourceResponse(messages(), ping=15)
