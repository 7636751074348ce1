"""What a step returns and what it consumed: the values every agent, the runner and every
consumer of the event stream share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

Verdict = Literal["ok", "escalate", "retry", "fail"]


@dataclass(frozen=True, slots=True)
class Usage:
    """What a step consumed: model tokens and calls, the time spent inside models, and its cost."""

    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0
    model_seconds: float = 0.0
    cost: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.model_calls + other.model_calls,
            self.model_seconds + other.model_seconds,
            self.cost + other.cost,
        )


NO_USAGE = Usage()


NO_VERSIONS: Mapping[str, str] = MappingProxyType({})


class Result(NamedTuple):
    """What a step returns. ``data`` replaces the handoff's payload for the steps downstream.

    ``verdict`` is how the step judged itself: ``escalate`` parks the run for a human reviewer
    (with ``reason``), ``retry`` asks the runner to try the step again, ``fail`` ends the run.
    ``versions`` are the per-call versions (rendered prompt hash, model version) added to the
    agent's static versions in the step's event. (A named tuple: one is built per step.)
    """

    data: Mapping[str, Any]
    confidence: float | None = None
    usage: Usage = NO_USAGE
    verdict: Verdict = "ok"
    reason: str = ""
    versions: Mapping[str, str] = NO_VERSIONS
    #: reasons for a human to look, carried downstream to a ``human_review`` step
    flags: tuple[str, ...] = ()


class StepInfo(NamedTuple):
    """The frozen view of the step being executed that an agent may read."""

    run_id: str
    step: str
    attempt: int


FinalStatus = Literal["succeeded", "failed", "cancelled", "waiting_review"]


class RunResult(NamedTuple):
    """How a run ended (or parked): its output, or why it stopped."""

    run_id: str
    status: FinalStatus
    output: Mapping[str, Any] | None
    error: str | None = None
    step: str | None = None
    item_key: str | None = None
