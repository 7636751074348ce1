"""Routes: a workflow's figures, Prometheus ``/metrics``, health, the caller, the denials log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from relayflow.server.deps import COMMON, NOT_FOUND, Caller, Svc, caller_secret
from relayflow.server.schemas import DenialView, Health, Me, WorkflowMetrics
from relayflow.server.workflows import WorkflowName
from relayflow.version import __version__

router = APIRouter(responses=COMMON)
public = APIRouter()


@router.get(
    "/v1/workflows/{name}/metrics",
    response_model=WorkflowMetrics,
    responses=NOT_FOUND,
    tags=["metrics"],
    summary="A workflow's figures: runs by status, TTR, cost per run, escalations, agents",
)
async def workflow_metrics(name: WorkflowName, svc: Svc, token: Caller) -> WorkflowMetrics:
    return svc.workflow_metrics(token, name)


@router.get("/v1/me", response_model=Me, tags=["access"], summary="The caller's token")
async def me(svc: Svc, token: Caller) -> Me:
    return svc.me(token)


@router.get(
    "/v1/denials",
    response_model=list[DenialView],
    tags=["access"],
    summary="Refused requests, newest first (admin on '*')",
)
async def denials(
    svc: Svc, token: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[DenialView]:
    return svc.denials(token, limit)


@public.get("/v1/health", response_model=Health, tags=["metrics"], summary="Liveness")
async def health(svc: Svc) -> Health:
    queued, running = svc.counts()
    return Health(status="ok", version=__version__, queued=queued, running=running)


@public.get(
    "/metrics",
    response_class=Response,
    tags=["metrics"],
    summary="Prometheus metrics (a token that reads every workflow, unless served public)",
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
        **{k: v for k, v in COMMON.items() if k in (401, 403)},
        **NOT_FOUND,
    },
)
async def prometheus(request: Request, svc: Svc) -> Response:
    """Workflow names and counts of every workflow: by default only a token with a grant on
    `*` reads them (scrape with `authorization: {credentials: …}`); `relayflow serve
    --metrics public` serves them to anyone, `--metrics off` not at all."""
    mode = svc.metrics_access
    if mode == "off":
        raise HTTPException(404, "Not Found")
    if mode == "token":
        svc.check(svc.authenticate(caller_secret(request)), "read", None)
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
