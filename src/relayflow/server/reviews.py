"""Routes: the review queue — list, claim, release, approve, correct."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from relayflow.server.deps import COMMON, CONFLICT, NOT_FOUND, Caller, Svc
from relayflow.server.schemas import CorrectReview, Decision, ReviewStatus, ReviewView

router = APIRouter(prefix="/v1/reviews", tags=["reviews"], responses=COMMON)

ReviewId = Annotated[str, Path(max_length=300, description="RUN_ID:STEP")]


@router.get("", response_model=list[ReviewView], summary="List review items, oldest first")
async def list_reviews(
    svc: Svc,
    token: Caller,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
    status: ReviewStatus | None = "pending",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ReviewView]:
    return svc.list_reviews(token, workflow=workflow, status=status, limit=limit)


@router.get(
    "/{review_id}", response_model=ReviewView, responses=NOT_FOUND, summary="One review item"
)
async def get_review(review_id: ReviewId, svc: Svc, token: Caller) -> ReviewView:
    return svc.get_review(token, review_id)


@router.post(
    "/{review_id}/claim",
    response_model=ReviewView,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Claim a review item (reviewer): others see it taken",
)
async def claim(review_id: ReviewId, svc: Svc, token: Caller) -> ReviewView:
    return svc.claim_review(token, review_id)


@router.post(
    "/{review_id}/release",
    response_model=ReviewView,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Give a claimed review item back (reviewer)",
)
async def release(review_id: ReviewId, svc: Svc, token: Caller) -> ReviewView:
    return svc.release_review(token, review_id)


@router.post(
    "/{review_id}/approve",
    response_model=Decision,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Approve the step's output (reviewer); the run resumes at once",
)
async def approve(review_id: ReviewId, svc: Svc, token: Caller) -> Decision:
    return await svc.decide(token, review_id, "approve")


@router.post(
    "/{review_id}/correct",
    response_model=Decision,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Replace the step's output (reviewer); the run resumes at once",
)
async def correct(review_id: ReviewId, body: CorrectReview, svc: Svc, token: Caller) -> Decision:
    return await svc.decide(token, review_id, "correct", body.output)
