"""Routes: feedback labels (reviewers' decisions are labels too)."""

from __future__ import annotations

from fastapi import APIRouter

from relayflow.server.deps import COMMON, CONFLICT, NOT_FOUND, Caller, Svc
from relayflow.server.schemas import FeedbackIn, FeedbackView
from relayflow.server.workflows import WorkflowName

router = APIRouter(tags=["feedback"], responses=COMMON)


@router.post(
    "/v1/feedback",
    status_code=201,
    response_model=FeedbackView,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Add a label (operator or reviewer)",
)
async def add_feedback(body: FeedbackIn, svc: Svc, token: Caller) -> FeedbackView:
    return svc.add_feedback(token, body)


@router.get(
    "/v1/workflows/{name}/feedback",
    response_model=list[FeedbackView],
    responses=NOT_FOUND,
    summary="A workflow's labels, oldest first",
)
async def list_feedback(name: WorkflowName, svc: Svc, token: Caller) -> list[FeedbackView]:
    return svc.list_feedback(token, name)
