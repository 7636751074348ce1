"""A fake model provider at the boundary: records what it was asked and answers from a script."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from relayflow.providers.base import Completion, CompletionRequest, Prediction, Price


def completion(
    text: str,
    *,
    confidence: float | None = 0.9,
    input_tokens: int = 10,
    output_tokens: int = 5,
    seconds: float = 0.25,
    label: str | None = None,
    label_scores: Mapping[str, float] | None = None,
) -> Completion:
    return Completion(
        text=text,
        confidence=confidence,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        seconds=seconds,
        model="fake-model",
        label=label,
        label_scores=label_scores,
    )


@dataclass
class FakeProvider:
    """Answers each call with the next scripted item; an exception in the script is raised."""

    completions: list[Completion | Exception] = field(default_factory=list)
    predictions: list[Prediction | Exception] = field(default_factory=list)
    name: str = "fake"
    version: str = "fake-1"
    price: Price = field(default_factory=Price)
    requests: list[CompletionRequest] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        if not self.completions:
            raise AssertionError(f"unexpected completion request: {request.prompt!r}")
        answer = self.completions.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def predict(self, features: Mapping[str, Any]) -> Prediction:
        self.rows.append(dict(features))
        if not self.predictions:
            raise AssertionError(f"unexpected prediction request: {features!r}")
        answer = self.predictions.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def close(self) -> None:
        self.closed = True


@dataclass
class LabelScorer:
    """A labels-mode provider that scores the labels by the prompt: ``scores[prompt]`` are the
    label log-probabilities it reports, its label is their argmax. It yields to the event loop
    once per call, so concurrent calls interleave as they would on a real model."""

    scores: Mapping[str, Mapping[str, float]]
    name: str = "scorer"
    version: str = "scorer-1"
    price: Price = field(default_factory=Price)
    requests: list[CompletionRequest] = field(default_factory=list)

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        await asyncio.sleep(0)
        if request.prompt not in self.scores:
            raise AssertionError(f"unexpected completion request: {request.prompt!r}")
        scores = self.scores[request.prompt]
        label = max(scores, key=scores.__getitem__)
        return completion(label, label=label, label_scores=dict(scores))

    def prompts(self) -> list[str]:
        return [r.prompt for r in self.requests]

    async def predict(self, features: Mapping[str, Any]) -> Prediction:
        raise AssertionError(f"unexpected prediction request: {features!r}")

    async def close(self) -> None:
        pass
