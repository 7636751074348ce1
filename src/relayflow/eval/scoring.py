"""Accuracy metrics of a workflow's ``evaluate:`` section, as pure functions over predictions and
references that return a `Score` with per-item values for bootstrap confidence intervals."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from relayflow.errors import ConfigError, InputError

#: the names `score` accepts: those of ``EvaluateSpec.metric``
METRICS = ("accuracy", "f1", "rouge", "bleu", "exact_match", "pass_at_k")

#: one item's references: a single string or several (the item's score is the best match)
References = str | Sequence[str]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


@dataclass(frozen=True, slots=True)
class Score:
    """A metric over ``n`` items: ``value`` in [0, 1], ``per_item`` each item's contribution
    (feed it to `relayflow.eval.stats.bootstrap_ci`), ``details`` sub-scores by name."""

    metric: str
    value: float
    n: int
    per_item: tuple[float, ...] = ()
    details: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # a read-only copy, so a Score cannot change after it is made
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))


def _clamp(value: float) -> float:
    """``value`` within [0, 1] (sacrebleu gives 100.00000000000004 for a perfect match)."""
    return min(1.0, max(0.0, value))


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def _check_lengths(pred: Sequence[Any], ref: Sequence[Any]) -> None:
    if len(pred) != len(ref):
        raise InputError(
            f"{len(pred)} predictions but {len(ref)} references: give one reference per "
            "prediction, in the same order"
        )


def _label(value: Any) -> str:
    """A label as text: ``str().strip().lower()``, with 1.0 written as 1 so numbers match."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def _text(value: Any) -> str:
    """A prediction as text; a missing one (None, e.g. a failed run) is the empty string."""
    return "" if value is None else str(value)


def _references(item: Any, index: int) -> list[str]:
    many = isinstance(item, Sequence) and not isinstance(item, str)
    refs = [_text(ref) for ref in (item if many else [item]) if ref is not None]
    if not refs:
        raise InputError(
            f"item {index} has no reference: give it at least one reference text in the golden set"
        )
    return refs


def _missing(extra: str) -> ConfigError:
    return ConfigError(f"this metric needs {extra}: pip install {extra}")


def accuracy(pred: Sequence[Any], ref: Sequence[Any]) -> Score:
    """Share of items whose prediction equals the reference after ``str().strip().lower()``
    (so ``"Refund "`` matches ``"refund"``, ``1`` matches ``"1"`` and ``1.0``)."""
    _check_lengths(pred, ref)
    hits = tuple(float(_label(p) == _label(r)) for p, r in zip(pred, ref, strict=True))
    return Score("accuracy", _mean(hits), len(hits), hits)


def f1(
    pred: Sequence[Any],
    ref: Sequence[Any],
    average: Literal["macro", "micro", "weighted"] = "macro",
) -> Score:
    """scikit-learn's F1 over labels normalised as in `accuracy`; a class that is never
    predicted scores 0. ``details`` maps each label to its own F1. ``per_item`` is 1.0 for a
    correct item, so its mean is accuracy, not F1: a CI of F1 itself would resample items and
    recompute F1."""
    _check_lengths(pred, ref)
    if not pred:
        return Score("f1", 0.0, 0)
    try:
        from sklearn.metrics import f1_score
    except ImportError as exc:
        raise _missing("scikit-learn") from exc
    y_pred = [_label(p) for p in pred]
    y_true = [_label(r) for r in ref]
    labels = sorted(set(y_true) | set(y_pred))
    value = float(f1_score(y_true, y_pred, average=average, zero_division=0.0))
    by_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0.0)
    details = {label: float(v) for label, v in zip(labels, by_class, strict=True)}
    hits = tuple(float(p == t) for p, t in zip(y_pred, y_true, strict=True))
    return Score("f1", _clamp(value), len(hits), hits, details)


def _squad_normalise(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION))
    return " ".join(text.split())


def exact_match(pred: Sequence[Any], ref: Sequence[References]) -> Score:
    """SQuAD-style exact match: equal after lower-casing and removing punctuation, the articles
    a/an/the and extra whitespace; an item with several references matches any of them."""
    _check_lengths(pred, ref)
    hits = tuple(
        float(any(_squad_normalise(_text(p)) == _squad_normalise(r) for r in _references(rs, i)))
        for i, (p, rs) in enumerate(zip(pred, ref, strict=True))
    )
    return Score("exact_match", _mean(hits), len(hits), hits)


def rouge(pred: Sequence[Any], refs: Sequence[References]) -> Score:
    """ROUGE F-measure with Google's ``rouge_score`` (Porter stemming), each item scored against
    its best reference. ``value`` and ``per_item`` are ROUGE-L; ``details`` holds the mean
    rouge1, rouge2 and rougeL. Its tokenizer keeps only ASCII letters and digits."""
    _check_lengths(pred, refs)
    kinds = ("rouge1", "rouge2", "rougeL")
    if not pred:
        return Score("rouge", 0.0, 0, (), dict.fromkeys(kinds, 0.0))
    try:
        from rouge_score import rouge_scorer  # type: ignore[import-untyped]
    except ImportError as exc:
        raise _missing("rouge-score") from exc
    scorer = rouge_scorer.RougeScorer(list(kinds), use_stemmer=True)
    best: dict[str, list[float]] = {kind: [] for kind in kinds}
    for index, (p, rs) in enumerate(zip(pred, refs, strict=True)):
        scores = [scorer.score(r, _text(p)) for r in _references(rs, index)]
        for kind in kinds:
            best[kind].append(_clamp(max(float(s[kind].fmeasure) for s in scores)))
    details = {kind: _mean(values) for kind, values in best.items()}
    return Score("rouge", details["rougeL"], len(pred), tuple(best["rougeL"]), details)


def bleu(pred: Sequence[Any], refs: Sequence[References]) -> Score:
    """sacreBLEU corpus BLEU / 100 (items may have different numbers of references).
    ``per_item`` is sentence BLEU / 100 (effective order), so its mean differs from ``value``:
    corpus BLEU pools n-gram counts, and is 0 for a corpus with no 4-gram match."""
    _check_lengths(pred, refs)
    if not pred:
        return Score("bleu", 0.0, 0)
    try:
        import sacrebleu
    except ImportError as exc:
        raise _missing("sacrebleu") from exc
    hyps = [_text(p) for p in pred]
    per_ref = [_references(rs, i) for i, rs in enumerate(refs)]
    width = max(len(rs) for rs in per_ref)
    # sacreBLEU takes reference streams; '' pads an item that has fewer references
    streams = [[rs[j] if j < len(rs) else "" for rs in per_ref] for j in range(width)]
    corpus = sacrebleu.corpus_bleu(hyps, streams)
    per_item = tuple(
        _clamp(sacrebleu.sentence_bleu(h, rs).score / 100)
        for h, rs in zip(hyps, per_ref, strict=True)
    )
    details = {f"precision_{n + 1}": p / 100 for n, p in enumerate(corpus.precisions)}
    details["brevity_penalty"] = float(corpus.bp)
    return Score("bleu", _clamp(corpus.score / 100), len(hyps), per_item, details)


def _pass_at_k_one(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k), as the product 1 - prod(1 - k/i for i in n-c+1..n)."""
    if n - c < k:
        return 1.0
    import numpy as np

    return _clamp(1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=float))))


def pass_at_k(passed_counts: Sequence[int], totals: Sequence[int], k: int) -> Score:
    """The unbiased pass@k of the HumanEval paper (Chen et al., 2021): for each problem with
    ``n`` samples of which ``c`` passed, the chance that at least one of ``k`` drawn passes;
    ``value`` is the mean over problems, ``per_item`` each problem's estimate."""
    if len(passed_counts) != len(totals):
        raise InputError(
            f"{len(passed_counts)} pass counts but {len(totals)} sample totals: give both per "
            "problem, in the same order"
        )
    if k < 1:
        raise InputError(f"pass@k needs k >= 1, not {k}: set evaluate.k to 1 or more")
    per_item: list[float] = []
    for index, (c, n) in enumerate(zip(passed_counts, totals, strict=True)):
        if n < k:
            raise InputError(
                f"problem {index} has {n} samples but pass@{k} needs at least {k}: draw more "
                "samples or lower evaluate.k"
            )
        if not 0 <= c <= n:
            raise InputError(
                f"problem {index} has {c} passing of {n} samples: the count must be 0..{n}"
            )
        per_item.append(_pass_at_k_one(int(n), int(c), k))
    return Score("pass_at_k", _mean(per_item), len(per_item), tuple(per_item), {"k": float(k)})


def pass_at_k_from_bools(passed: Sequence[bool]) -> Score:
    """pass@1 with one sample per problem: the share of problems whose sample passed."""
    return pass_at_k([int(bool(p)) for p in passed], [1] * len(passed), 1)


def _samples(item: Any, index: int) -> tuple[int, int]:
    """(passed, total) of one problem: a bool is one sample, a list of bools several."""
    items = list(item) if isinstance(item, Sequence) and not isinstance(item, str) else [item]
    if not items or not all(isinstance(x, bool) or x in (0, 1) for x in items):
        raise InputError(
            f"pass_at_k: prediction {index} is {item!r}, not whether the code passed: point "
            "evaluate.prediction at a true/false field (or a list of them, one per sample)"
        )
    return sum(bool(x) for x in items), len(items)


def score(
    metric: str,
    pred: Sequence[Any],
    ref: Sequence[Any] | None,
    *,
    k: int = 1,
    average: Literal["macro", "micro", "weighted"] = "macro",
) -> Score:
    """``metric`` (an ``EvaluateSpec.metric`` name) of ``pred`` against ``ref``. For pass_at_k
    each prediction says whether the code passed (a bool, or a list of bools for several
    samples) and ``ref`` only has to be as long as ``pred``, or None."""
    if metric not in METRICS:
        raise InputError(
            f"unknown metric {metric!r}: set evaluate.metric to one of {', '.join(METRICS)}"
        )
    if metric == "pass_at_k":
        if ref is not None:
            _check_lengths(pred, ref)
        counts = [_samples(item, i) for i, item in enumerate(pred)]
        return pass_at_k([c for c, _ in counts], [n for _, n in counts], k)
    if ref is None:
        raise InputError(
            f"metric {metric!r} needs references: set evaluate.reference or evaluate.golden"
        )
    if metric == "accuracy":
        return accuracy(pred, ref)
    if metric == "f1":
        return f1(pred, ref, average=average)
    if metric == "exact_match":
        return exact_match(pred, ref)
    if metric == "rouge":
        return rouge(pred, ref)
    return bleu(pred, ref)
