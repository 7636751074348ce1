"""Per-variant figures of live traffic, read back from the run store: the runs recorded as
``<workflow>@<variant>``, their outcome, TTR, cost and (with ``evaluate:``) accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relayflow.eval.stats import bootstrap_ci, median, percentile
from relayflow.spec.variants import SEPARATOR

if TYPE_CHECKING:
    from relayflow.schema.workflow import Workflow
    from relayflow.store.sql_store import SqlStore


@dataclass(frozen=True, slots=True)
class LiveFigures:
    """One variant's recorded runs. TTR is a run's end minus its start (completed runs);
    cost is the model cost of its steps; accuracy the ``evaluate`` metric of completed runs
    that have a reference, with its 95 % bootstrap interval."""

    variant: str
    runs: int
    succeeded: int
    failed: int
    waiting_review: int
    ttr_median: float | None
    ttr_p95: float | None
    cost_per_run: float | None
    accuracy: float | None
    accuracy_low: float | None
    accuracy_high: float | None
    scored: int


def live_figures(store: SqlStore, workflow: Workflow, *, limit: int = 10_000) -> list[LiveFigures]:
    """The figures of each variant's latest ``limit`` runs, in the file's order."""
    return [_figures(store, workflow, variant.name, limit) for variant in workflow.spec.variants]


def _figures(store: SqlStore, workflow: Workflow, variant: str, limit: int) -> LiveFigures:
    from relayflow.learn.references import References
    from relayflow.store.outcomes import variant_runs

    rows = variant_runs(store.engine, f"{workflow.name}{SEPARATOR}{variant}", limit)
    statuses = [row.status for row in rows]
    done = [row for row in rows if row.status == "succeeded"]
    ttrs = [row.ended - row.started for row in done if row.ended is not None]
    value = low = high = None
    scored = 0
    evaluate = workflow.spec.evaluate
    if evaluate is not None and evaluate.metric != "pass_at_k" and done:
        references = References(evaluate, workflow.base_dir)
        preds: list[Any] = []
        refs: list[Any] = []
        for row in done:
            output = row.output or {}
            reference = references.lookup(output)
            if reference is not None:
                preds.append(output.get(evaluate.prediction))
                refs.append(reference)
        if preds:
            from relayflow.eval.scoring import score

            result = score(evaluate.metric, preds, refs, k=evaluate.k)
            value, scored = result.value, result.n
            low, high = bootstrap_ci(result.per_item)
    return LiveFigures(
        variant=variant,
        runs=len(rows),
        succeeded=len(done),
        failed=statuses.count("failed"),
        waiting_review=statuses.count("waiting_review"),
        ttr_median=median(ttrs) if ttrs else None,
        ttr_p95=percentile(ttrs, 95) if ttrs else None,
        cost_per_run=sum(row.cost for row in rows) / len(rows) if rows else None,
        accuracy=value,
        accuracy_low=low,
        accuracy_high=high,
        scored=scored,
    )
