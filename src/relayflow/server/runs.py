"""Routes: submit a run or a batch, read runs with their steps, cancel, resume."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response

from relayflow.server.deps import COMMON, CONFLICT, NOT_FOUND, Caller, Svc
from relayflow.server.idempotency import HEADER, HEADER_HELP, KEY_PATTERN
from relayflow.server.schemas import (
    BatchView,
    ErrorBody,
    RunStatus,
    RunView,
    SubmitBatch,
    SubmitRun,
)
from relayflow.server.workflows import WorkflowName

router = APIRouter(tags=["runs"], responses=COMMON)

RunId = Annotated[str, Path(max_length=64, description="A run's id.")]
IdempotencyKey = Annotated[
    str | None,
    Header(alias=HEADER, pattern=KEY_PATTERN, max_length=200, description=HEADER_HELP),
]
#: the header a replayed answer carries
REPLAYED = "Idempotent-Replayed"


def _replayed(model: type, what: str) -> dict[int | str, dict[str, object]]:
    return {
        200: {
            "model": model,
            "description": f"A retry with the same Idempotency-Key and body: the {what} the "
            f"first request created (header `{REPLAYED}: true`).",
        },
        409: {
            "model": ErrorBody,
            "description": "The Idempotency-Key was used with another body.",
        },
    }


@router.post(
    "/v1/workflows/{name}/runs",
    status_code=202,
    response_model=RunView,
    responses={**NOT_FOUND, **_replayed(RunView, "run")},
    summary="Submit a run (operator)",
)
async def submit(
    name: WorkflowName,
    body: SubmitRun,
    svc: Svc,
    token: Caller,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> RunView:
    """The run is recorded as queued, then executes in the server's worker pool; follow it
    with GET /v1/runs/{run_id} or its event stream. Send an `Idempotency-Key` to make
    retries safe."""
    view, replayed = await svc.submit(
        token,
        name,
        body.input,
        version=body.version,
        item_key=body.item_key,
        idempotency_key=idempotency_key,
    )
    if replayed:
        response.status_code = 200
        response.headers[REPLAYED] = "true"
    return view


@router.post(
    "/v1/workflows/{name}/batches",
    status_code=202,
    response_model=BatchView,
    responses={**NOT_FOUND, **_replayed(BatchView, "batch")},
    summary="Submit a batch: one run per input (operator)",
)
async def submit_batch(
    name: WorkflowName,
    body: SubmitBatch,
    svc: Svc,
    token: Caller,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> BatchView:
    """One run per input, recorded as queued. Send an `Idempotency-Key` to make retries
    safe: the same key and body answer with the first request's batch."""
    view, replayed = await svc.submit_batch(
        token, name, body.inputs, version=body.version, idempotency_key=idempotency_key
    )
    if replayed:
        response.status_code = 200
        response.headers[REPLAYED] = "true"
    return view


@router.get("/v1/runs", response_model=list[RunView], summary="List runs, newest first")
async def list_runs(
    svc: Svc,
    token: Caller,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
    status: RunStatus | None = None,
    batch_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[RunView]:
    return svc.list_runs(token, workflow=workflow, status=status, batch_id=batch_id, limit=limit)


@router.get(
    "/v1/runs/{run_id}",
    response_model=RunView,
    responses=NOT_FOUND,
    summary="A run: status, output and its steps",
)
async def get_run(run_id: RunId, svc: Svc, token: Caller) -> RunView:
    return svc.get_run(token, run_id)


@router.post(
    "/v1/runs/{run_id}/cancel",
    response_model=RunView,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Cancel a queued, running or parked run (operator)",
)
async def cancel(run_id: RunId, svc: Svc, token: Caller) -> RunView:
    return await svc.cancel(token, run_id)


@router.post(
    "/v1/runs/{run_id}/resume",
    status_code=202,
    response_model=RunView,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Resume a failed, cancelled or interrupted run (operator)",
)
async def resume(run_id: RunId, svc: Svc, token: Caller) -> RunView:
    """Continues from the first unfinished step; finished steps never run again."""
    return await svc.resume(token, run_id)
