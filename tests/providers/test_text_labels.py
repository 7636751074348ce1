"""The label model learned from reviews (providers/text_labels.py): both featurizers learn topics
they were shown a few examples of, confidences are probabilities, rare labels are not guessed,
and the embedding model opens from its wheel without touching the network."""

from __future__ import annotations

import importlib.util
import random
import socket
from typing import Any

import pytest

from relayflow.errors import InputError
from relayflow.providers import text_labels
from relayflow.providers.text_labels import TextLabelModel
from tests.learn.topics import corpus

HAS_WORDLLAMA = importlib.util.find_spec("wordllama") is not None


def split() -> tuple[list[str], list[str], list[str], list[str]]:
    texts, labels = corpus(24, seed=1)  # every (shape, word) pair of each topic
    rng = random.Random(2)
    order = list(range(len(texts)))
    rng.shuffle(order)
    train, test = order[:40], order[40:]
    return (
        [texts[i] for i in train],
        [labels[i] for i in train],
        [texts[i] for i in test],
        [labels[i] for i in test],
    )


def accuracy(model: TextLabelModel, texts: list[str], labels: list[str]) -> float:
    answers = model.predict(texts)
    return sum(a.label == y for a, y in zip(answers, labels, strict=True)) / len(labels)


FEATURIZERS: list[Any] = [
    "tfidf",
    pytest.param(
        "wordllama",
        marks=pytest.mark.skipif(not HAS_WORDLLAMA, reason="needs the learn extra (wordllama)"),
    ),
]


@pytest.mark.parametrize("featurizer", FEATURIZERS)
def test_a_few_examples_per_label_teach_unseen_sentences(featurizer: str) -> None:
    train_x, train_y, test_x, test_y = split()
    model = TextLabelModel(featurizer).fit(train_x, train_y)  # type: ignore[arg-type]
    assert model.labels == ("cooking", "football", "music", "weather")
    assert not model.abstains
    assert accuracy(model, test_x, test_y) >= 0.75
    for answer in model.predict(test_x):
        assert 0.0 < answer.confidence <= 1.0
        assert answer.confidence == answer.scores[0][1]
        assert sum(p for _, p in answer.scores) == pytest.approx(1.0)
        assert [p for _, p in answer.scores] == sorted((p for _, p in answer.scores), reverse=True)


def test_a_label_seen_too_rarely_is_never_answered() -> None:
    texts, labels = corpus(8, seed=3)
    # two music examples only: under min_per_label
    keep = [i for i, y in enumerate(labels) if y != "music"] + [
        i for i, y in enumerate(labels) if y == "music"
    ][:2]
    model = TextLabelModel("tfidf", min_per_label=3).fit(
        [texts[i] for i in keep], [labels[i] for i in keep]
    )
    assert model.skipped == {"music": 2}
    assert "music" not in model.labels
    answers = model.predict(["the drummer played the chorus", "when is the next concert"])
    assert all(a.label != "music" for a in answers)
    assert all("music" not in dict(a.scores) for a in answers)


def test_with_fewer_than_two_learnable_labels_it_abstains() -> None:
    model = TextLabelModel("tfidf").fit(
        ["rain again", "more rain", "snow soon", "a recipe"], ["weather"] * 3 + ["cooking"]
    )
    assert model.abstains
    assert [a.label for a in model.predict(["rain", "pasta"])] == [None, None]
    assert all(a.confidence == 0.0 for a in model.predict(["rain"]))


def test_the_same_data_and_seed_give_the_same_probabilities() -> None:
    train_x, train_y, test_x, _ = split()
    first = TextLabelModel("tfidf", seed=7).fit(train_x, train_y).predict(test_x)
    second = TextLabelModel("tfidf", seed=7).fit(train_x, train_y).predict(test_x)
    assert first == second


def test_bad_input_says_what_is_wrong() -> None:
    with pytest.raises(InputError, match="3 texts but 2 labels"):
        TextLabelModel("tfidf").fit(["a", "b", "c"], ["x", "y"])
    with pytest.raises(InputError, match="min_per_label must be at least 2"):
        TextLabelModel("tfidf", min_per_label=1)
    with pytest.raises(InputError, match="unknown featurizer 'bert'"):
        text_labels.features_of("bert")  # type: ignore[arg-type]


@pytest.mark.skipif(not HAS_WORDLLAMA, reason="needs the learn extra (wordllama)")
def test_the_embedding_model_opens_from_its_wheel_without_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a network connection was attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    text_labels._wordllama.cache_clear()
    try:
        vectors = text_labels.WordLlamaFeatures().transform(["is it going to rain", "bake bread"])
    finally:
        text_labels._wordllama.cache_clear()
    assert vectors.shape == (2, 256)
    # normalised sentence vectors: unit length
    assert [round(float((row**2).sum()), 4) for row in vectors] == [1.0, 1.0]
