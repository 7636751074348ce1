"""Routes: register and list workflows (every version kept, every registration recorded)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from relayflow.errors import Problem, SpecError
from relayflow.server.confine import decode_base64
from relayflow.server.deps import COMMON, NOT_FOUND, Caller, Svc
from relayflow.server.schemas import (
    MAX_BUNDLE_BYTES,
    NAME_PATTERN,
    BundleFile,
    RegisterWorkflow,
    Registration,
    WorkflowInfo,
)

router = APIRouter(prefix="/v1/workflows", tags=["workflows"], responses=COMMON)

WorkflowName = Annotated[str, Path(pattern=NAME_PATTERN, description="The workflow's name.")]


@router.post(
    "",
    status_code=201,
    response_model=WorkflowInfo,
    summary="Register a workflow version (admin; +code when it runs code)",
)
async def register(body: RegisterWorkflow, svc: Svc, token: Caller) -> WorkflowInfo:
    """Register a workflow from its YAML text, with the files it names as a bundle (`files`:
    relative path → text, or `{"base64": …}`), or by a path under one of the server's
    `--workflow-root` folders. Every file it names must be in the bundle or under a root.
    A workflow that runs code (transform scripts, service calls, pickled models) needs an
    admin grant on `*` or `+code`. Its version is the hash of the text and the files;
    registering the same again adds no version but is recorded. Spec problems come back as
    422 with one `file:line: field: message — fix` line each."""
    files = _bundle(body.files) if body.files is not None else None
    return await svc.register_workflow(
        token, name=body.name, yaml=body.yaml, path=body.path, files=files
    )


def _bundle(files: dict[str, str | BundleFile]) -> dict[str, bytes]:
    out = {
        name: value.encode("utf-8") if isinstance(value, str) else decode_base64(name, value.base64)
        for name, value in files.items()
    }
    total = sum(len(data) for data in out.values())
    if total > MAX_BUNDLE_BYTES:
        raise SpecError(
            [
                Problem(
                    "files",
                    0,
                    "",
                    f"{total} bytes in all, over the {MAX_BUNDLE_BYTES} a bundle may hold",
                    "keep large data out of the bundle (a source under a --workflow-root)",
                )
            ]
        )
    return out


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


@router.get(
    "/{name}/registrations",
    response_model=list[Registration],
    responses=NOT_FOUND,
    summary="Every registration of a workflow: who, when, which version and files, newest first",
)
async def registrations(name: WorkflowName, svc: Svc, token: Caller) -> list[Registration]:
    return svc.registrations(token, name)
