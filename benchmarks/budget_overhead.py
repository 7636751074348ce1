"""What a budget adds to each model call: reserve before it and settle after it, in the run
store's SQLite database (WAL), and the same around the real scikit-learn provider.

Prints a table and writes ``benchmarks/results/budget_overhead.json``. Each figure is the median
of ``--repeat`` rounds of ``--calls`` calls; the per-call time of a round is its total ÷ calls.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestration import machine_info, write_json

RESULTS = Path(__file__).resolve().parent / "results" / "budget_overhead.json"


def per_call_us(rounds: int, calls: int, once: Callable[[], None]) -> float:
    """The median over ``rounds`` of the mean time of one call, in µs."""
    figures = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            once()
        figures.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(figures)


def sklearn_model(folder: Path) -> Path:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (200, 2))
    y = np.where(x[:, 0] > 0.6, "fraud", "ok")
    path = folder / "fraud.joblib"
    joblib.dump(LogisticRegression().fit(x, y), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from relayflow.govern.budget import Budget, GuardedProvider
    from relayflow.govern.ledger import Ledger, close_ledgers
    from relayflow.providers.base import Price
    from relayflow.providers.sklearn_model import SklearnProvider
    from relayflow.schema.file import BudgetSpec

    spec = BudgetSpec.model_validate(
        {
            "limits": [
                {"per": "workflow", "period": "day", "currency": 1e9, "soft": 0.9},
                {"per": "workflow", "period": "month", "tokens": 10**15},
            ]
        }
    )
    rows: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        budget = Budget(spec, "bench", Ledger(f"sqlite:///{folder}/runs.db"))

        def reserve_settle() -> None:
            reserved = budget.reserve(0.01, 300, 600)
            assert reserved is not None  # noqa: S101 - the benchmark's sanity check
            budget.settle(reserved, 0.008, 120)

        rows["reserve + settle (2 limits, SQLite)"] = per_call_us(
            args.repeat, args.calls, reserve_settle
        )

        provider = SklearnProvider(
            "fraud", sklearn_model(folder), version="v1", price=Price(per_call=0.01)
        )
        guarded = GuardedProvider(provider, budget, None, 600)
        features = {"amount": 0.7, "age": 0.1}

        async def calls(target: Any) -> None:
            for _ in range(args.calls):
                await target.predict(features)

        def timed(target: Any) -> float:
            figures = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                asyncio.run(calls(target))
                figures.append((time.perf_counter() - start) / args.calls * 1e6)
            return statistics.median(figures)

        timed(provider)  # load the model once
        bare = timed(provider)
        with_budget = timed(guarded)
        rows["sklearn predict, no budget"] = bare
        rows["sklearn predict, with budget"] = with_budget
        rows["added by the budget (difference)"] = with_budget - bare
        close_ledgers()

    width = max(map(len, rows))
    print(f"{'per model call':<{width}}  median µs")
    for name, value in rows.items():
        print(f"{name:<{width}}  {value:9.0f}")
    write_json(
        RESULTS,
        {
            "machine": machine_info(),
            "calls": args.calls,
            "repeat": args.repeat,
            "median_us_per_call": {k: round(v, 1) for k, v in rows.items()},
        },
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
