"""Variants of one workflow benchmarked on the same items, compared with the baseline (the first
variant): paired bootstrap differences of the per-item metric and of TTR, and the winner."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relayflow.eval.stats import Diff, paired_bootstrap_diff

if TYPE_CHECKING:
    from relayflow.bench.collector import RunMeasure
    from relayflow.bench.runner import WorkflowBench
    from relayflow.learn.references import References
    from relayflow.schema.file import EvaluateSpec

#: accuracies closer than this are a tie, which the lower CPW breaks
TIE = 1e-9


@dataclass(frozen=True, slots=True)
class Comparison:
    """``variant`` minus ``baseline`` on the items both scored: the mean difference of the
    per-item ``evaluate`` metric and of TTR (seconds), each with its 95 % paired bootstrap
    interval (`significant`: when it excludes 0)."""

    variant: str
    baseline: str
    n: int
    metric: Diff | None
    ttr_n: int
    ttr: Diff | None
    #: the metric on what the agents produced, before the reviewer's corrections
    agent_metric: Diff | None = None


@dataclass(frozen=True, slots=True)
class Experiment:
    """One workflow's variants measured on the same items."""

    workflow: str
    file: str
    metric: str | None
    baseline: str
    #: (variant, share of live traffic, the bench of its workflow) in the file's order
    arms: tuple[tuple[str, float, WorkflowBench], ...]
    comparisons: tuple[Comparison, ...]
    winner: str | None
    verdict: str

    def comparison(self, variant: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.variant == variant), None)


def item_scores(
    runs: Sequence[RunMeasure], evaluate: EvaluateSpec | None, references: References
) -> dict[str, float]:
    """Each item's score by the ``evaluate`` metric (per-item form: correctness for accuracy
    and F1, ROUGE-L, sentence BLEU, pass@k per problem), averaged over its completed runs."""
    from relayflow.errors import RelayflowError
    from relayflow.eval.scoring import score

    if evaluate is None:
        return {}
    completed = [r for r in runs if r.status == "succeeded" and r.output is not None]
    keys: list[str] = []
    preds: list[Any] = []
    refs: list[Any] = []
    if evaluate.metric == "pass_at_k":
        samples: dict[str, list[Any]] = {}
        for run in completed:
            value = (run.output or {}).get(evaluate.prediction)
            if value is not None:
                samples.setdefault(_key(run), []).append(value)
        keys, preds = list(samples), list(samples.values())
    else:
        for run in completed:
            reference = references.lookup(run.output)
            if reference is not None:
                keys.append(_key(run))
                preds.append((run.output or {}).get(evaluate.prediction))
                refs.append(reference)
    if not preds:
        return {}
    try:
        result = score(
            evaluate.metric, preds, refs if evaluate.metric != "pass_at_k" else None, k=evaluate.k
        )
    except RelayflowError:
        return {}
    return _means(zip(keys, result.per_item, strict=True))


def item_ttrs(runs: Sequence[RunMeasure]) -> dict[str, float]:
    """Each item's TTR (seconds) over its completed runs, averaged."""
    return _means((_key(r), r.ttr) for r in runs if r.status == "succeeded" and r.ttr is not None)


def _key(run: RunMeasure) -> str:
    return run.item_key or run.run_id


def _means(pairs: Any) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for key, value in pairs:
        sums.setdefault(key, []).append(float(value))
    return {key: math.fsum(values) / len(values) for key, values in sums.items()}


def paired(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[int, Diff | None]:
    """``a`` minus ``b`` over the items both have (in ``b``'s order)."""
    common = [key for key in b if key in a]
    if not common:
        return 0, None
    diff = paired_bootstrap_diff([a[k] for k in common], [b[k] for k in common])
    return len(common), diff


def compare(
    workflow: str,
    file: str,
    arms: Sequence[tuple[str, float, WorkflowBench]],
    evaluate: EvaluateSpec | None,
    references: References,
) -> Experiment:
    """Compare every arm with the first; pick the winner by the ``evaluate`` metric (the lower
    CPW breaks a tie; with no metric, the lowest CPW, then the fastest median TTR)."""
    from relayflow.bench.collector import as_agents_left_it

    scores = {name: item_scores(bench.runs, evaluate, references) for name, _s, bench in arms}
    agents = {
        name: item_scores([as_agents_left_it(r) for r in bench.runs], evaluate, references)
        for name, _s, bench in arms
    }
    ttrs = {name: item_ttrs(bench.runs) for name, _s, bench in arms}
    baseline = arms[0][0]
    comparisons = []
    for name, _share, _bench in arms[1:]:
        n, metric = paired(scores[name], scores[baseline])
        ttr_n, ttr = paired(ttrs[name], ttrs[baseline])
        _n, agent_metric = paired(agents[name], agents[baseline])
        comparisons.append(Comparison(name, baseline, n, metric, ttr_n, ttr, agent_metric))
    metric_name = evaluate.metric if evaluate is not None else None
    winner = _winner(arms)
    verdict = _verdict(winner, baseline, metric_name, comparisons)
    return Experiment(
        workflow, file, metric_name, baseline, tuple(arms), tuple(comparisons), winner, verdict
    )


def deciding(comparison: Comparison) -> Diff | None:
    """The difference that decides: the metric's, or the one before review when the
    reviewer's corrections left the metric tied."""
    diff = comparison.metric
    if diff is not None and abs(diff.mean_diff) <= TIE and comparison.agent_metric is not None:
        return comparison.agent_metric
    return diff


def significant(diff: Diff | None) -> bool:
    """Whether the 95 % interval of a difference excludes 0."""
    return diff is not None and (diff.low > 0 or diff.high < 0)


def _winner(arms: Sequence[tuple[str, float, WorkflowBench]]) -> str | None:
    """The best by the metric; among ties, by the metric before review (fewer corrections),
    then the lowest CPW, then the fastest median TTR."""
    measured = [(name, bench) for name, _s, bench in arms if bench.figures.completed > 0]
    if not measured:
        return None

    for get in (_final, _before_review, _cheap, _fast):
        best = max(get(b) for _n, b in measured)
        measured = [(n, b) for n, b in measured if get(b) >= best - TIE]
    return measured[0][0]


def _value(accuracy: Any) -> float:
    return accuracy.value if accuracy is not None and accuracy.value is not None else -1.0


def _final(bench: WorkflowBench) -> float:
    return _value(bench.accuracy)


def _before_review(bench: WorkflowBench) -> float:
    return _value(bench.agent_accuracy)


def _cheap(bench: WorkflowBench) -> float:
    return -(bench.figures.cpw if bench.figures.cpw is not None else math.inf)


def _fast(bench: WorkflowBench) -> float:
    return -(bench.figures.ttr_median if bench.figures.ttr_median is not None else math.inf)


def _verdict(
    winner: str | None, baseline: str, metric: str | None, comparisons: Sequence[Comparison]
) -> str:
    """The winner in one sentence, and whether its lead over the baseline is significant (on
    the metric, or before review when the reviewer's corrections made the metric a tie)."""
    if winner is None:
        return "no variant completed a run: no winner"
    by = f"highest {metric}" if metric else "lowest CPW"
    if winner == baseline:
        return f"{winner} ({by}): the baseline stays; no variant beat it"
    comparison = next((c for c in comparisons if c.variant == winner), None)
    if comparison is None or metric is None or comparison.metric is None:
        return f"{winner} ({by}); no per-item metric to test it against {baseline}"
    diff, what = comparison.metric, ""
    if deciding(comparison) is not diff and comparison.agent_metric is not None:
        diff, what = comparison.agent_metric, " before review"
        by = f"{metric} tied after review; highest before it"
    signed = f"{diff.mean_diff * 100:+.1f} points [{diff.low * 100:+.1f}, {diff.high * 100:+.1f}]"
    if significant(diff):
        return (
            f"{winner} ({by}): {signed}{what} over {baseline}, significant (p={diff.p_value:.3f})"
        )
    return (
        f"{winner} ({by}): {signed}{what} over {baseline}, not significant "
        f"(p={diff.p_value:.3f}) — measure more items before rolling it out"
    )
