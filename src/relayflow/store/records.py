"""Read-only views of what the store holds: runs, steps, reviews, batches, claims, keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StepRecord:
    run_id: str
    step: str
    agent_type: str
    status: str
    attempt: int
    actor: str
    output: Mapping[str, Any] | None
    confidence: float | None
    input_tokens: int
    output_tokens: int
    model_calls: int
    model_seconds: float
    cost: float
    versions: Mapping[str, str]
    flags: tuple[str, ...]
    error: str | None
    started: float | None
    ended: float | None


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    workflow: str
    workflow_version: str
    batch_id: str | None
    item_key: str | None
    status: str
    input: Mapping[str, Any]
    output: Mapping[str, Any] | None
    error: str | None
    waiting_step: str | None
    started: float
    ended: float | None


@dataclass(frozen=True, slots=True)
class ReviewRecord:
    review_id: str
    run_id: str
    step: str
    workflow: str
    status: str
    reason: str
    input: Mapping[str, Any]
    output: Mapping[str, Any]
    confidence: float | None
    decision: str | None
    decided_output: Mapping[str, Any] | None
    reviewer: str | None
    created: float
    decided: float | None


@dataclass(frozen=True, slots=True)
class BatchRecord:
    batch_id: str
    workflow: str
    workflow_file: str
    inputs: str | None
    concurrency: int
    status: str
    runs: int
    created: float
    updated: float


@dataclass(frozen=True, slots=True)
class BadRecordRecord:
    """A record of a batch's source that could not become a run, and why."""

    batch_id: str
    item_key: str
    location: str
    reason: str
    excerpt: str
    created: float


@dataclass(frozen=True, slots=True)
class SpendRecord:
    """One step that called a model: what it used and cost, for ``relayflow costs``."""

    workflow: str
    run_id: str
    step: str
    model: str | None
    started: float | None
    input_tokens: int
    output_tokens: int
    model_calls: int
    cost: float


@dataclass(frozen=True, slots=True)
class BudgetAlertRecord:
    """A soft budget limit crossed, or a hard one that refused ``count`` calls."""

    scope: str
    subject: str
    period: str
    span: str
    kind: str
    workflow: str
    message: str
    count: int
    first: float
    last: float


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    """Who took a pending review, and when (the review queue's claim)."""

    review_id: str
    claimed_by: str
    token_id: str | None
    claimed: float


@dataclass(frozen=True, slots=True)
class OwnedRun:
    """A run the server took responsibility for, and the token that submitted it."""

    run: RunRecord
    token_id: str | None


@dataclass(frozen=True, slots=True)
class WorkflowHistory:
    """A workflow's recent runs as the figures need them: how many runs are in each status
    (all of them), and the latest runs with their steps and how often each escalated."""

    by_status: Mapping[str, int]
    runs: tuple[RunRecord, ...]
    steps: Mapping[str, tuple[StepRecord, ...]]
    escalations: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class KeyClaim:
    """An ``Idempotency-Key`` as stored: the kind and body hash of the request that claimed it,
    and the id (of a run or a batch) it stands for."""

    kind: str
    body_hash: str
    result_id: str


@dataclass(frozen=True, slots=True)
class WorkflowVersionRecord:
    """A registered version of a workflow: its text and where its files are."""

    name: str
    version: str
    file: str
    text: str
    registered_by: str | None
    created: float
