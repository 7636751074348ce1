"""The contract of a model provider and the values that cross it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Price:
    """What a provider charges: per million input/output tokens and per call (in the currency)."""

    input_per_1m: float = 0.0
    output_per_1m: float = 0.0
    per_call: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens * self.input_per_1m / 1_000_000
            + output_tokens * self.output_per_1m / 1_000_000
            + self.per_call
        )


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """One call to a text model. ``labels`` restricts the answer to one of a fixed set."""

    prompt: str
    system: str | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    labels: Sequence[str] | None = None
    json_schema: Mapping[str, Any] | None = None
    stop: Sequence[str] = ()
    seed: int | None = 0


@dataclass(frozen=True, slots=True)
class Completion:
    """A model's answer with what it cost. ``confidence`` is in [0, 1] when the backend can tell
    (mean token probability from log-probabilities, or the class probability). In labels mode
    ``label_scores`` holds the log-probability of each label as the whole answer, when the
    backend can tell (the local llama.cpp model does); None otherwise."""

    text: str
    confidence: float | None
    input_tokens: int
    output_tokens: int
    seconds: float
    model: str
    label: str | None = None
    label_scores: Mapping[str, float] | None = None
    #: what the call cost when the provider knows better than ``price.cost(tokens)`` (a router
    #: sums the calls it made, each at its own model's price); None: price it by the provider
    cost: float | None = None
    #: model calls behind this answer (a cascade that escalated made more than one)
    calls: int = 1


@dataclass(frozen=True, slots=True)
class Prediction:
    """A tabular model's answer: the predicted label and the probability of each label."""

    label: Any
    probabilities: Mapping[str, float] = field(default_factory=dict)
    confidence: float | None = None
    seconds: float = 0.0
    model: str = ""
    #: as Completion.cost and Completion.calls
    cost: float | None = None
    calls: int = 1


@runtime_checkable
class Provider(Protocol):
    """A model behind an alias. Text providers implement ``complete``; tabular ones ``predict``."""

    name: str
    version: str
    price: Price

    async def complete(self, request: CompletionRequest) -> Completion: ...

    async def predict(self, features: Mapping[str, Any]) -> Prediction: ...

    async def close(self) -> None: ...
