"""Runs' outputs judged against their references (the golden set's record by key, or the
reference a run carried): the bench's golden reviewer, and the accuracy of completed runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relayflow.core import events as ev
from relayflow.errors import RelayflowError

if TYPE_CHECKING:
    from relayflow.bench.collector import RunMeasure
    from relayflow.engine.runner import Runner, RunResult
    from relayflow.learn.references import References
    from relayflow.schema.file import EvaluateSpec

#: the name the reviewer's decisions carry in the store and the audit trail
REVIEWER_NAME = "golden-reviewer"


def label_text(value: Any) -> str:
    """A label as accuracy compares it: ``str().strip().lower()``, with 1.0 written as 1."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def reference_options(reference: Any) -> list[Any]:
    """A reference as a list of acceptable answers (several references, or one)."""
    if isinstance(reference, Sequence) and not isinstance(reference, str | bytes):
        return [r for r in reference if r is not None]
    return [reference]


def matches(prediction: Any, reference: Any) -> bool:
    """Whether ``prediction`` equals the reference (any one of several), as accuracy compares
    labels: ``str().strip().lower()``, with 1.0 written as 1."""
    if prediction is None:
        return False
    return any(label_text(prediction) == label_text(r) for r in reference_options(reference))


@dataclass(frozen=True, slots=True)
class ReviewCounts:
    """The golden reviewer's decisions: approved as they were, corrected to the reference, and
    approved unjudged because no reference was found."""

    approved: int = 0
    corrected: int = 0
    unjudged: int = 0

    @property
    def total(self) -> int:
        return self.approved + self.corrected + self.unjudged


class GoldenReviewer:
    """An event consumer (it keeps the output of each escalated step) that decides parked runs:
    approve when the prediction equals the reference, else correct the prediction to it."""

    name = REVIEWER_NAME

    def __init__(self, references: References) -> None:
        self.references = references
        self._escalated: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._counts = {"approved": 0, "corrected": 0, "unjudged": 0}

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepEscalated):
            self._escalated[(event.run_id, event.step)] = event.output

    @property
    def counts(self) -> ReviewCounts:
        return ReviewCounts(**self._counts)

    def reset(self) -> None:
        """Forget the counts (after the warm-up)."""
        self._counts = dict.fromkeys(self._counts, 0)

    def decision(self, output: Mapping[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """``("approve", None)`` or ``("correct", corrected output)`` for an escalated output."""
        evaluate = self.references.evaluate
        reference = self.references.lookup(output)
        options = reference_options(reference) if reference is not None else []
        if evaluate is None or not options:
            self._counts["unjudged"] += 1
            return "approve", None
        if matches(output.get(evaluate.prediction), reference):
            self._counts["approved"] += 1
            return "approve", None
        self._counts["corrected"] += 1
        return "correct", {**output, evaluate.prediction: options[0]}

    async def review(self, runner: Runner, result: RunResult) -> RunResult:
        """Decide the step ``result`` waits at; the run resumes and the new result returns."""
        step = result.step or ""
        output = self._escalated.pop((result.run_id, step), None)
        if output is None:  # escalated before this reviewer listened: read it from the store
            store = runner.store
            records = {s.step: s for s in store.steps(result.run_id)} if store is not None else {}
            record = records.get(step)
            output = dict(record.output or {}) if record is not None else {}
        decision, corrected = self.decision(output)
        if decision == "approve":
            return await runner.decide(result.run_id, step, "approve", None, self.name)
        return await runner.decide(result.run_id, step, "correct", corrected, self.name)


@dataclass(frozen=True, slots=True)
class Accuracy:
    """The ``evaluate`` metric over completed runs, with its 95 % bootstrap interval; ``value``
    is None (and ``reason`` says why) when it could not be measured."""

    metric: str | None
    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0
    unscored: int = 0
    reason: str | None = None


#: resamples of the interval of BLEU, which is scored again for each (slow: sentence BLEU too)
BLEU_RESAMPLES = 200


def measure_accuracy(
    evaluate: EvaluateSpec | None, runs: Sequence[RunMeasure], references: References
) -> Accuracy:
    """``evaluate.metric`` of the completed runs' ``prediction`` fields against their references.
    pass@k groups the runs of one item (one per pass) as that problem's samples."""
    from relayflow.eval.scoring import score
    from relayflow.eval.stats import bootstrap_ci

    if evaluate is None:
        return Accuracy(
            None,
            None,
            reason="the workflow has no evaluate: section (add a metric and a golden "
            "set or a carried reference to measure accuracy)",
        )
    metric = evaluate.metric
    completed = [r for r in runs if r.status == "succeeded" and r.output is not None]
    preds: list[Any] = []
    refs: list[Any] = []
    unscored = 0
    if metric == "pass_at_k":
        samples: dict[str, list[Any]] = {}
        for run in completed:
            value = (run.output or {}).get(evaluate.prediction)
            if value is None:
                unscored += 1
            else:
                samples.setdefault(run.item_key or run.run_id, []).append(value)
        preds = list(samples.values())
    else:
        for run in completed:
            reference = references.lookup(run.output)
            if reference is None:
                unscored += 1
                continue
            preds.append((run.output or {}).get(evaluate.prediction))
            refs.append(reference)
    if not preds:
        why = "no run completed" if not completed else f"no completed run had a {_wanted(evaluate)}"
        return Accuracy(metric, None, n=0, unscored=unscored, reason=why)
    try:
        result = score(metric, preds, refs if metric != "pass_at_k" else None, k=evaluate.k)
        if metric == "f1":
            low, high = _macro_f1_ci(preds, refs)
        elif metric == "bleu":
            low, high = _rescored_ci(metric, preds, refs, evaluate.k)
        else:
            low, high = bootstrap_ci(result.per_item)
    except RelayflowError as exc:
        return Accuracy(metric, None, n=len(preds), unscored=unscored, reason=str(exc))
    return Accuracy(metric, result.value, low, high, result.n, unscored)


def _wanted(evaluate: EvaluateSpec) -> str:
    if evaluate.metric == "pass_at_k":
        return f"{evaluate.prediction!r} field in its output"
    if evaluate.golden is not None:
        return f"golden record (joined by {evaluate.key!r})"
    return f"{evaluate.reference!r} field in its output"


def _rescored_ci(
    metric: str, preds: Sequence[Any], refs: Sequence[Any], k: int, seed: int = 0
) -> tuple[float, float]:
    """The 95 % percentile bootstrap interval of a corpus metric: resample items, score again."""
    import numpy as np

    from relayflow.eval.scoring import score

    rng = np.random.default_rng(seed)
    n = len(preds)
    values = []
    for _ in range(BLEU_RESAMPLES):
        pick = rng.integers(0, n, size=n)
        values.append(score(metric, [preds[i] for i in pick], [refs[i] for i in pick], k=k).value)
    low, high = np.quantile(np.asarray(values), [0.025, 0.975])
    return float(low), float(high)


def _macro_f1_ci(
    preds: Sequence[Any], refs: Sequence[Any], resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """The 95 % bootstrap interval of macro F1 (scikit-learn's: the mean F1 of the labels each
    resample holds), computed for all resamples at once with numpy."""
    import numpy as np

    codes: dict[str, int] = {}
    truth = np.asarray([codes.setdefault(label_text(r), len(codes)) for r in refs])
    guess = np.asarray([codes.setdefault(label_text(p), len(codes)) for p in preds])
    rng = np.random.default_rng(seed)
    n = len(truth)
    rows = max(1, 4_000_000 // n)  # resamples drawn at once, to bound memory
    values = []
    for start in range(0, resamples, rows):
        pick = rng.integers(0, n, size=(min(rows, resamples - start), n))
        t, g = truth[pick], guess[pick]
        total = np.zeros(len(pick))
        present = np.zeros(len(pick))
        for code in range(len(codes)):
            is_t, is_g = t == code, g == code
            tp = np.count_nonzero(is_t & is_g, axis=1)
            wrong = np.count_nonzero(is_t ^ is_g, axis=1)  # false positives + false negatives
            seen = (tp + wrong) > 0
            total += np.where(seen, 2 * tp / np.maximum(2 * tp + wrong, 1), 0.0)
            present += seen
        values.append(total / np.maximum(present, 1))
    low, high = np.quantile(np.concatenate(values), [0.025, 0.975])
    return float(low), float(high)
