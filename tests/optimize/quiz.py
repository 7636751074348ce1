"""A quiz-taking model for the optimizer's tests, at the provider boundary: each prompt says the
right label and how hard the item is; the model answers right (sure of it) when the item is
easier than its ``skill``, else answers another label (unsure). Each call costs its price."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from relayflow.errors import ProviderError
from relayflow.providers.base import (
    BuildMember,
    Completion,
    CompletionRequest,
    Files,
    Prediction,
    Price,
    Provider,
    ProviderConfig,
)

PROMPT = re.compile(r"label: (\S+); difficulty: ([0-9.]+)")


class QuizProvider:
    def __init__(self, name: str, skill: float, price: Price) -> None:
        self.name, self.skill, self.price = name, skill, price
        self.version = f"quiz-{skill}"
        self.calls = 0

    async def complete(self, request: CompletionRequest) -> Completion:
        self.calls += 1
        found = PROMPT.search(request.prompt)
        if found is None or not request.labels:
            raise ProviderError("the quiz model reads `label: X; difficulty: D` prompts")
        truth, difficulty = found.group(1), float(found.group(2))
        if difficulty < self.skill:
            label, confidence = truth, 0.95
        else:
            label, confidence = next(x for x in request.labels if x != truth), 0.5
        return Completion(label, confidence, 10, 1, 0.0, self.version, label=label)

    async def predict(self, features: Mapping[str, Any]) -> Prediction:
        raise ProviderError("the quiz model answers prompts")

    async def close(self) -> None:
        return None


class QuizConfig(ProviderConfig):
    provider: Literal["quiz"] = "quiz"
    skill: float = Field(default=0.5, ge=0, le=1)

    def build(
        self, alias: str, base_dir: Path, models: Mapping[str, ProviderConfig], member: BuildMember
    ) -> tuple[Provider, Files]:
        return QuizProvider(alias, self.skill, self.price.price()), ()


def register() -> None:
    from relayflow.providers.registry import register as add

    add("quiz", QuizConfig)


WORKFLOW = """\
name: quiz
models:
  cheap: {provider: quiz, skill: 0.3, price: {per_call: 0.001}}
  smart: {provider: quiz, skill: 0.8, price: {per_call: 0.01}}
evaluate:
  golden: golden.jsonl
  metric: accuracy
  key: id
  prediction: answer
  reference: answer
%(optimize)s
workflow:
  - name: Items
    type: retrieval
    source: items.jsonl
  - name: Answer
    type: inference
    model: cheap
    prompt: "label: {{ data.truth }}; difficulty: {{ data.difficulty }}"
    output: label
    labels: ["yes", "no"]
    output_field: answer
  - name: Check
    type: quality_check
    min_confidence: 0.9
    on_failure: escalate
  - name: Review
    type: human_review
"""


def quiz(folder: Path, optimize: str = "", items: int = 40, splits: bool = True) -> Path:
    """The quiz workflow in ``folder`` with ``items`` items, every fourth one held out."""
    rows, golden = [], []
    for index in range(items):
        truth = "yes" if index % 3 else "no"
        rows.append(
            {"id": f"q{index}", "truth": truth, "difficulty": round((index * 37 % 100) / 100, 2)}
        )
        split = {"split": "holdout" if index % 4 == 3 else "dev"} if splits else {}
        golden.append({"id": f"q{index}", "answer": truth, **split})
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in golden))
    path = folder / "workflow.yaml"
    path.write_text(WORKFLOW % {"optimize": optimize})
    return path
