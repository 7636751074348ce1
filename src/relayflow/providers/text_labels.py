"""A label model relayflow fits itself from the labels people gave a step (issue 11): text turned
into features, a logistic-regression head with calibrated probabilities, and the calibrated
probability of the answer as its confidence — an estimate of how often such an answer is right,
which a generated text's token probability is not.

Two featurizers, both offline:

- ``wordllama``: 256-dimension sentence embeddings from the weights and tokenizer that the
  ``wordllama`` wheel ships. ``WordLlama.load()`` looks for the tokenizer under a name other than
  the one the wheel ships and would then try Hugging Face, so the files are opened here, from the
  package itself; nothing is ever fetched.
- ``tfidf``: TF-IDF over words (1–2-grams) and characters (2–5-grams within words), which needs
  no model at all.

A label seen fewer than ``min_per_label`` times is not learned; with fewer than two labels left
the model abstains on everything (``predict`` answers None), so a cascade passes the item on
instead of the model guessing.

A fitted model is saved with skops (``to_bytes``/``from_bytes``): a zip of the estimators'
state that is loaded without unpickling, and only scikit-learn, NumPy and SciPy types are
trusted when it is read back, so a model file can hold no code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, Protocol

from relayflow.errors import ConfigError, InputError, ProviderError

if TYPE_CHECKING:
    import numpy as np

Featurizer = Literal["wordllama", "tfidf"]

#: a label seen fewer times than this is not learned (the model abstains rather than guess it)
MIN_PER_LABEL = 3
#: the class of the texts whose labels were seen too rarely to learn (never answered)
OTHER = "\x00other"
#: the most folds the probability calibration uses (fewer when a label has fewer examples)
CALIBRATION_FOLDS = 3


class Features(Protocol):
    """Texts in, one row of numbers per text out; ``fit`` sees the training texts only."""

    def fit(self, texts: Sequence[str]) -> Features: ...

    def transform(self, texts: Sequence[str]) -> Any: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """The model's label for one text and its calibrated probability; ``label`` None: abstained."""

    label: str | None
    confidence: float
    #: every learned label's probability, highest first
    scores: tuple[tuple[str, float], ...] = ()


class WordLlamaFeatures:
    """Sentence embeddings (mean of word vectors, normalised) from the wordllama wheel's files."""

    def fit(self, texts: Sequence[str]) -> WordLlamaFeatures:
        return self  # a fixed embedding: nothing to learn from the texts

    def transform(self, texts: Sequence[str]) -> Any:
        return _wordllama().embed(list(texts), norm=True)


@lru_cache(maxsize=1)
def _wordllama() -> Any:
    """The embedding model, opened once per process from the package's own files."""
    try:
        from importlib.resources import files

        from safetensors import safe_open
        from tokenizers import Tokenizer
        from wordllama.inference import WordLlamaInference
    except ImportError as exc:
        raise ConfigError(
            f"the wordllama featurizer needs the learn extra ({exc.name} is missing): "
            "pip install 'relayflow[learn]', or use featurizer: tfidf"
        ) from None
    root = files("wordllama")
    tokenizer = Tokenizer.from_file(str(root / "tokenizers" / "l2_supercat_tokenizer_config.json"))
    with safe_open(str(root / "weights" / "l2_supercat_256.safetensors"), framework="np") as f:
        embedding = f.get_tensor("embedding.weight")
    return WordLlamaInference(embedding, tokenizer, binary=False)


class TfidfFeatures:
    """TF-IDF of word 1–2-grams and character 2–5-grams (within word bounds), side by side."""

    def __init__(self) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion

        self._union = FeatureUnion(
            [
                ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
                (
                    "chars",
                    TfidfVectorizer(
                        analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1
                    ),
                ),
            ]
        )

    @classmethod
    def fitted(cls, union: Any) -> TfidfFeatures:
        """Features around a union that was fitted before (read back from a model file)."""
        features = cls.__new__(cls)
        features._union = union
        return features

    @property
    def union(self) -> Any:
        return self._union

    def fit(self, texts: Sequence[str]) -> TfidfFeatures:
        self._union.fit(list(texts))
        return self

    def transform(self, texts: Sequence[str]) -> Any:
        return self._union.transform(list(texts))


def features_of(kind: Featurizer) -> Features:
    if kind == "wordllama":
        return WordLlamaFeatures()
    if kind == "tfidf":
        return TfidfFeatures()
    raise InputError(f"unknown featurizer {kind!r}: use wordllama or tfidf")


class TextLabelModel:
    """Fit on (text, label) pairs; ``predict`` answers a label with its calibrated probability."""

    def __init__(
        self,
        featurizer: Featurizer = "wordllama",
        *,
        min_per_label: int = MIN_PER_LABEL,
        seed: int = 0,
    ) -> None:
        if min_per_label < 2:
            raise InputError("min_per_label must be at least 2: calibration needs two examples")
        self.featurizer = featurizer
        self.min_per_label = min_per_label
        self.seed = seed
        self.labels: tuple[str, ...] = ()
        #: the labels seen too rarely to learn, with how often they were seen
        self.skipped: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self._features: Features | None = None
        self._head: Any = None

    @property
    def abstains(self) -> bool:
        """Whether the model answers nothing: fewer than two labels had enough examples."""
        return self._head is None

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> TextLabelModel:
        if len(texts) != len(labels):
            raise InputError(f"{len(texts)} texts but {len(labels)} labels: give one label a text")
        counts = Counter(labels)
        self.counts = dict(counts)
        kept = {label for label, n in counts.items() if n >= self.min_per_label}
        self.skipped = {label: n for label, n in counts.items() if label not in kept}
        self.labels = tuple(sorted(kept))
        self._features, self._head = None, None
        if len(kept) < 2:
            return self
        # The texts of the labels seen too rarely to learn are one more class, "none of the
        # learned labels": an item like them gets a low probability for every learned label
        # and is passed on, where a model that never saw them would force one of its labels
        # on it, sure of itself (early on, most labels are rare).
        rare = sum(self.skipped.values())
        rows = [
            (t, y if y in kept else OTHER)
            for t, y in zip(texts, labels, strict=True)
            if y in kept or rare >= self.min_per_label
        ]
        train_texts = [t for t, _ in rows]
        train_labels = [y for _, y in rows]
        features = features_of(self.featurizer).fit(train_texts)
        self._head = _calibrated_head(
            features.transform(train_texts), train_labels, self._folds(train_labels), self.seed
        )
        self._features = features
        return self

    def _folds(self, labels: Sequence[str]) -> int:
        return max(2, min(CALIBRATION_FOLDS, min(Counter(labels).values())))

    def predict(self, texts: Sequence[str]) -> list[Answer]:
        if self._head is None or self._features is None:
            return [Answer(None, 0.0) for _ in texts]
        probabilities = self._head.predict_proba(self._features.transform(texts))
        classes = [str(c) for c in self._head.classes_]
        return [_answer(classes, row) for row in probabilities]

    # ---- the model file ----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The fitted model as a skops file (see `from_bytes`)."""
        sio = _skops()
        state: dict[str, Any] = {
            "format": FORMAT,
            "featurizer": self.featurizer,
            "min_per_label": self.min_per_label,
            "seed": self.seed,
            "labels": list(self.labels),
            "counts": dict(self.counts),
            "skipped": dict(self.skipped),
            "head": self._head,
            "tfidf": self._features.union if isinstance(self._features, TfidfFeatures) else None,
        }
        return bytes(sio.dumps(state))

    @classmethod
    def from_bytes(cls, content: bytes, *, source: str = "the model file") -> TextLabelModel:
        """A model saved by `to_bytes`; only scikit-learn, NumPy and SciPy types are trusted."""
        sio = _skops()
        try:
            untrusted = sio.get_untrusted_types(data=content)
            foreign = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
            if foreign:
                raise ProviderError(
                    f"{source} holds types relayflow does not load ({', '.join(foreign[:3])}): "
                    "it was not written by relayflow; fit it again with relayflow retrain"
                )
            state = sio.loads(content, trusted=untrusted)
        except ProviderError:
            raise
        except Exception as exc:  # a damaged zip raises almost anything
            raise ProviderError(
                f"cannot read {source} ({type(exc).__name__}: {exc}); fit it again with "
                "relayflow retrain"
            ) from exc
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ProviderError(
                f"{source} is not a relayflow label model ({FORMAT}); fit it with relayflow retrain"
            )
        model = cls(
            state["featurizer"], min_per_label=int(state["min_per_label"]), seed=int(state["seed"])
        )
        model.labels = tuple(str(label) for label in state["labels"])
        model.counts = {str(k): int(v) for k, v in state["counts"].items()}
        model.skipped = {str(k): int(v) for k, v in state["skipped"].items()}
        model._head = state["head"]
        if model._head is not None:
            tfidf = state["tfidf"]
            model._features = (
                TfidfFeatures.fitted(tfidf) if tfidf is not None else features_of(model.featurizer)
            )
        return model


#: what a model file says it is (bumped when its layout changes)
FORMAT = "relayflow.text_labels/1"
#: the only types a model file may hold
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")


def _skops() -> Any:
    try:
        import skops.io as sio
    except ImportError:
        raise ConfigError(
            "saving and loading learned models needs skops: pip install 'relayflow[learn]'"
        ) from None
    return sio


def _calibrated_head(x: Any, labels: Sequence[str], folds: int, seed: int) -> Any:
    """Logistic regression whose probabilities are calibrated by temperature scaling on
    cross-validated predictions (Guo et al., 2017, "On Calibration of Modern Neural
    Networks"): one parameter for all labels, so it stays sound with a few examples per label
    and many labels, where one-vs-rest sigmoid or isotonic calibration spread the probability
    too thin (a right answer at 0.3) or overfit."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression

    head = CalibratedClassifierCV(
        LogisticRegression(C=1.0, max_iter=2000, random_state=seed),
        method="temperature",
        cv=folds,
        # one head fitted on every example, its temperature from the folds' predictions: a
        # prediction costs one model, not one per fold
        ensemble=False,
    )
    return head.fit(x, list(labels))


def _answer(classes: list[str], row: np.ndarray) -> Answer:
    ranked = sorted(zip(classes, (float(p) for p in row), strict=True), key=lambda cp: -cp[1])
    learned = tuple((c, p) for c, p in ranked if c != OTHER)
    label, confidence = ranked[0]
    if label == OTHER:  # most like the labels it has not learned: pass it on
        return Answer(None, 0.0, learned)
    return Answer(label, confidence, learned)
