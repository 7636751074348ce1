"""The learned provider (providers/learned.py): it abstains until its model file exists, then
answers from the item's text with the model's probability as confidence, passes on labels the
step does not allow, is rebuilt when the file is replaced, and refuses a file it did not write."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from relayflow.errors import ProviderError
from relayflow.providers.base import CompletionRequest
from relayflow.providers.registry import build_provider, provider_config
from relayflow.providers.text_labels import TextLabelModel
from tests.learn.topics import corpus

pytest.importorskip("skops", reason="skops (extra: learn) is missing")

LABELS = ["cooking", "football", "music", "weather"]


def spec(tmp_path: Path) -> object:
    return provider_config({"provider": "learned", "model": "topic.skops", "featurizer": "tfidf"})


def ask(provider: object, text: str, labels: list[str] | None = LABELS) -> object:
    request = CompletionRequest("a prompt the model does not read", labels=labels, text=text)
    return asyncio.run(provider.complete(request))  # type: ignore[attr-defined]


def fitted(path: Path, per_label: int = 12) -> None:
    texts, labels = corpus(per_label, seed=3)
    path.write_bytes(TextLabelModel("tfidf").fit(texts, labels).to_bytes())


def test_without_a_model_file_it_abstains(tmp_path: Path) -> None:
    provider = build_provider("topic", spec(tmp_path), tmp_path)  # type: ignore[arg-type]
    answer = ask(provider, "who won the match last night")
    assert answer.abstained and answer.label is None and answer.confidence == 0.0  # type: ignore[attr-defined]
    assert provider.version == "untrained"


def test_a_promoted_file_is_read_from_the_next_call_on(tmp_path: Path) -> None:
    config = spec(tmp_path)
    before = build_provider("topic", config, tmp_path)  # type: ignore[arg-type]
    fitted(tmp_path / "topic.skops")
    after = build_provider("topic", config, tmp_path)  # type: ignore[arg-type]
    assert after is not before and after.version.startswith("topic.skops@")
    answer = ask(after, "who won the league match last night")
    assert answer.label == "football" and not answer.abstained  # type: ignore[attr-defined]
    assert 0.25 < answer.confidence <= 1.0  # type: ignore[attr-defined]


def test_a_label_the_step_does_not_allow_is_passed_on(tmp_path: Path) -> None:
    fitted(tmp_path / "topic.skops")
    provider = build_provider("topic", spec(tmp_path), tmp_path)  # type: ignore[arg-type]
    answer = ask(provider, "who won the league match last night", labels=["cooking", "music"])
    assert answer.abstained  # type: ignore[attr-defined]


def test_a_file_relayflow_did_not_write_is_refused(tmp_path: Path) -> None:
    (tmp_path / "topic.skops").write_bytes(b"not a model")
    provider = build_provider("topic", spec(tmp_path), tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ProviderError, match="cannot read model 'topic'"):
        ask(provider, "anything")


def test_a_saved_model_answers_as_the_fitted_one(tmp_path: Path) -> None:
    texts, labels = corpus(12, seed=3)
    model = TextLabelModel("tfidf").fit(texts, labels)
    again = TextLabelModel.from_bytes(model.to_bytes())
    probe = ["is snow expected this weekend", "my pasta came out burnt"]
    assert [a.label for a in again.predict(probe)] == [a.label for a in model.predict(probe)]
    assert again.counts == model.counts and again.labels == model.labels
