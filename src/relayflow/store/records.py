"""Read-only views of what the store holds: runs, steps, reviews, batches."""

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
