"""Our own small labelled corpus for the learned-model tests: four topics, sentences built from
each topic's words, so that a held-out sentence shares words (and meaning) with the training
ones but is never one of them."""

from __future__ import annotations

import itertools
import random

TOPICS: dict[str, tuple[list[str], list[str]]] = {
    "weather": (
        ["rain", "storm", "sunshine", "forecast", "snow", "wind", "clouds", "thunder"],
        ["will there be {} tomorrow", "the {} looks heavy today", "is {} expected this weekend"],
    ),
    "cooking": (
        ["recipe", "oven", "garlic", "pasta", "bake", "soup", "flour", "simmer"],
        ["how long should I {} it", "my {} came out burnt", "which {} goes with onions"],
    ),
    "football": (
        ["goal", "referee", "striker", "penalty", "league", "match", "keeper", "offside"],
        ["that {} was a disgrace", "who won the {} last night", "the {} decided the game"],
    ),
    "music": (
        ["guitar", "album", "concert", "chorus", "melody", "drummer", "vinyl", "lyrics"],
        ["I love the {} of this song", "when is the next {}", "the {} sounds out of tune"],
    ),
}


def corpus(per_label: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for label, (words, shapes) in TOPICS.items():
        pairs = list(itertools.product(shapes, words))
        rng.shuffle(pairs)
        for shape, word in pairs[:per_label]:
            texts.append(shape.format(word))
            labels.append(label)
    return texts, labels
