"""Retraining an LLM step's prompt: corrected answers become a few-shot block, the golden set
(judged by calling the model) decides, and the template file follows the production version."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import relayflow
from relayflow.core import events as ev
from relayflow.core.result import Usage
from relayflow.errors import RelayflowError
from relayflow.learn.prompt_job import strip_examples, template_fields
from relayflow.learn.retrain import RetrainOutcome, RetrainRequest, run_retrain
from relayflow.prompts.templates import PromptTemplate, render
from relayflow.providers.base import Completion, CompletionRequest, Prediction, Price
from relayflow.store.registry import Registry
from relayflow.store.sql_store import SqlStore

TEMPLATE = "Classify the message {{ text }} as refund or other.\nAnswer:"

WORKFLOW = """
name: intents
models:
  small: {provider: openai, model: tiny, base_url: "http://127.0.0.1:9/v1"}
workflow:
  - name: Classify
    type: inference
    model: small
    prompt_template: prompt.jinja
    output: label
    labels: [refund, other]
    output_field: intent
  - name: Feedback
    type: retrain
    trigger: manual
    target: Classify
evaluate:
  metric: accuracy
  prediction: intent
  reference: expected
"""


class ExampleFollower:
    """A fake model at the provider boundary: it says "refund" for a message about money only
    when the prompt shows it an example of a money message whose answer is refund."""

    name = "small"
    version = "fake-1"
    price = Price()

    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def complete(self, request: CompletionRequest) -> Completion:
        self.prompts.append(request.prompt)
        shown = re.search(r'Input: \{"text": "[^"]*money[^"]*"\}\nOutput: refund', request.prompt)
        query = request.prompt.rsplit("Classify the message", 1)[-1]
        label = "refund" if shown and "money" in query else "other"
        return Completion(label, 0.9, 10, 1, 0.01, "fake", label=label)

    async def predict(self, features: Mapping[str, Any]) -> Prediction:
        raise AssertionError("not a tabular model")

    async def close(self) -> None:
        pass


def _message(i: int) -> tuple[str, str]:
    if i % 2:
        return f"I want my money back for order {i}", "refund"
    return f"Where is my parcel {i}", "other"


def _project(folder: Path, runs: int) -> tuple[Path, str]:
    """The workflow, its template and a store of ``runs`` runs the base prompt answered
    "other"; each run has a label added by hand (the refund ones are corrections)."""
    (folder / "prompt.jinja").write_text(TEMPLATE)
    path = folder / "workflow.yaml"
    path.write_text(WORKFLOW)
    workflow = relayflow.load_workflow(path)
    store_path = str(folder / "runs.db")
    store = SqlStore(store_path)
    try:
        for i in range(runs):
            text, truth = _message(i)
            run_id, data, ts = f"run{i:03d}", {"id": f"m{i}", "text": text}, 1000.0 + i
            store.handle(ev.RunStarted(run_id, workflow.name, workflow.version, data, ts))
            output = {**data, "intent": "other"}
            store.handle(
                ev.StepFinished(
                    run_id, "Classify", "inference", 1, ts, ts, output, 0.9, Usage(), {}
                )
            )
            store.handle(ev.RunFinished(run_id, "succeeded", output, None, ts))
            store.flush()
            store.add_feedback(workflow.name, {"intent": truth}, run_id=run_id)
    finally:
        store.close()
    return path, store_path


def _retrain(path: Path, store: str, model: ExampleFollower) -> RetrainOutcome:
    request = RetrainRequest(relayflow.load_workflow(path), store)
    return asyncio.run(run_retrain(request, lambda alias: model))


def test_corrected_answers_become_few_shot_examples_and_win(tmp_path: Path) -> None:
    path, store = _project(tmp_path, 40)
    model = ExampleFollower()

    outcome = _retrain(path, store, model)

    assert outcome.kind == "prompt" and outcome.name == "Classify"
    assert outcome.decision == "promoted", outcome
    assert outcome.scores.candidate == 1.0 and outcome.scores.parent < 0.8
    assert outcome.train_rows == 5, "five examples at most"
    assert len(model.prompts) == 2 * outcome.golden_rows, "each golden item, with each prompt"
    # the user's template file is theirs: the promoted version lives in the registry
    assert (tmp_path / "prompt.jinja").read_text() == TEMPLATE
    with Registry(store) as registry:
        production = registry.production("Classify")
        assert production is not None and production.version == outcome.candidate
        assert production.card["data"]["examples"] == 5
        text = production.artifact
    assert text.endswith(TEMPLATE) and strip_examples(text) == TEMPLATE
    rendered = render(PromptTemplate(None, text), {"text": "Give me my money back"})
    assert rendered.startswith("Examples of inputs and their correct output:")
    assert rendered.count("Output: refund") == 5 and "{#" not in rendered
    assert rendered.endswith(
        "Classify the message Give me my money back as refund or other.\nAnswer:"
    )

    # a second retrain replaces the block instead of stacking another one
    again = _retrain(path, store, ExampleFollower())
    # (the step is not pinned: it reads its file, so the same candidate is judged against it)
    assert again.candidate == outcome.candidate
    assert "pin `prompt_template: prompt.jinja@production`" in outcome.note
    with Registry(store) as registry:
        production = registry.production("Classify")
        assert production is not None
        assert production.artifact.count("relayflow:few-shot begin") == 1
        registry.rollback("Classify")
        assert registry.production("Classify").artifact == TEMPLATE  # type: ignore[union-attr]
    assert (tmp_path / "prompt.jinja").read_text() == TEMPLATE


def test_without_corrections_there_is_nothing_to_learn(tmp_path: Path) -> None:
    path, store = _project(tmp_path, 40)
    writer = SqlStore(store)
    try:  # every later label agrees with the model: nothing was corrected
        for i in range(40):
            writer.add_feedback("intents", {"intent": "other"}, run_id=f"run{i:03d}")
    finally:
        writer.close()
    with pytest.raises(RelayflowError, match="no corrected reviews of step Classify"):
        _retrain(path, store, ExampleFollower())
    assert (tmp_path / "prompt.jinja").read_text() == TEMPLATE


def test_template_fields_finds_what_the_prompt_reads() -> None:
    source = "{{ text }} {{ data.customer }} {{ data['order'] }} {% for x in items %}{% endfor %}"
    assert template_fields(source) == ["customer", "items", "order", "text"]
