"""How a failed step or call is tried again: the policy a workflow declares and the delay
before each new attempt (exponential backoff with full jitter)."""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field


class RetryPolicy(BaseModel):
    """How often a failed step is tried again, with exponential backoff and full jitter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(default=1, ge=1, le=100)
    backoff: float = Field(default=0.5, ge=0)
    max_backoff: float = Field(default=30.0, ge=0)
    jitter: bool = True


def backoff_delay(policy: RetryPolicy, attempt: int) -> float:
    """Exponential backoff with full jitter (AWS architecture blog's recommendation)."""
    delay = min(policy.max_backoff, policy.backoff * (2 ** (attempt - 1)))
    return random.uniform(0, delay) if policy.jitter else delay  # noqa: S311 - backoff jitter: no secret
