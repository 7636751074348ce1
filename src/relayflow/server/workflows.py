"""Routes: register and list workflows (every version kept)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from relayflow.server.deps import COMMON, NOT_FOUND, Caller, Svc
from relayflow.server.models import NAME_PATTERN, RegisterWorkflow, WorkflowInfo

router = APIRouter(prefix="/v1/workflows", tags=["workflows"], responses=COMMON)

WorkflowName = Annotated[str, Path(pattern=NAME_PATTERN, description="The workflow's name.")]


@router.post(
    "",
    status_code=201,
    response_model=WorkflowInfo,
    summary="Register a workflow version (admin)",
)
async def register(body: RegisterWorkflow, svc: Svc, token: Caller) -> WorkflowInfo:
    """Register a workflow from its YAML text or a path on the server's disk. Its version is
    the hash of the text; registering the same text again changes nothing. Spec problems come
    back as 422 with one `file:line: field: message — fix` line each."""
    return svc.register_workflow(token, name=body.name, yaml=body.yaml, path=body.path)


@router.get("", response_model=list[WorkflowInfo], summary="List the workflows you may read")
async def list_workflows(svc: Svc, token: Caller) -> list[WorkflowInfo]:
    return svc.list_workflows(token)


@router.get(
    "/{name}",
    response_model=WorkflowInfo,
    responses=NOT_FOUND,
    summary="One workflow: its agents and every version",
)
async def get_workflow(name: WorkflowName, svc: Svc, token: Caller) -> WorkflowInfo:
    return svc.get_workflow(token, name)
