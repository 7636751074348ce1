"""`relayflow optimize` on the four example workflows with a small budget: the front, whether a
point improves one objective significantly and loses on none (dev split, then the holdout), and
the wall time and fresh model calls after the pilot against the estimate announced before.

    python benchmarks/optimize_examples.py [--only fraud_detection] [--trials N] [--limit N]

Each example runs as an overlay (``extends:`` its workflow.yaml) that adds an ``optimize:``
section: a split by key hash where the references travel with the items, the golden set's own
``split`` field for customer support. Each starts from an empty output folder (no cache), so
the estimate is tested on fresh work. Writes benchmarks/results/optimize_examples.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "optimize_examples.json"
#: (example, trials, dev/holdout items, split written in the overlay): the LLM examples get a
#: small budget (about 1-3 s per local model call on one core)
EXAMPLES: dict[str, tuple[int, int, str]] = {
    "fraud_detection": (12, 60, "split: {holdout: 0.3}"),
    "customer_support": (4, 12, ""),
    "code_generation": (4, 10, "split: {holdout: 0.3}"),
    "document_summarization": (3, 5, "split: {holdout: 0.3}"),
}


def prepare(example: str) -> None:
    if (
        example == "fraud_detection"
        and not (ROOT / "examples/fraud_detection/model/phishing.joblib").exists()
    ):
        subprocess.run(  # noqa: S603 - the example's own training script
            [sys.executable, str(ROOT / "examples/fraud_detection/train_model.py")], check=True
        )


def overlay(example: str, folder: Path, trials: int, limit: int, split: str) -> Path:
    base = ROOT / "examples" / example / "workflow.yaml"
    lines = [f"extends: {base}", "optimize:", f"  trials: {trials}", f"  limit: {limit}"]
    if split:
        lines.append(f"  {split}")
    path = folder / f"{example}_optimize.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def measure(example: str, trials: int, limit: int, split: str, out: Path) -> dict[str, Any]:
    from relayflow.optimize.report import to_json
    from relayflow.optimize.search import optimize, settings_of
    from relayflow.spec.loader import load_spec

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    path = overlay(example, out, trials, limit, split)
    workflow = load_spec(path)
    settings = settings_of(workflow)
    started = time.perf_counter()
    outcome = asyncio.run(
        optimize(workflow, out=out, store=str(out / "runs.db"), settings=settings)
    )
    wall = time.perf_counter() - started
    data = to_json(outcome)
    (out / "optimize.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    est = outcome.estimate
    improving_dev = [
        int(n)
        for n, found in data["dev_gains"].items()
        if any(g["significant_gain"] for g in found)
        and not any(g["significant_loss"] for g in found)
    ]
    holdout = data["holdout"]
    ran_holdout = holdout is not None
    expected_seconds = est.seconds - (0 if ran_holdout else est.holdout_seconds)
    expected_calls = est.calls - (0 if ran_holdout else est.holdout_calls)
    return {
        "example": example,
        "trials": trials,
        "limit": limit,
        "knobs": data["knobs"],
        "points": len(outcome.points),
        "front": data["front"],
        "improving_on_dev": improving_dev,
        "chosen": data["chosen"],
        "verdict": outcome.verdict,
        "holdout_recommended": holdout["recommended"] if holdout else None,
        "holdout_reason": holdout["reason"] if holdout else None,
        "holdout_gains": holdout["gains"] if holdout else None,
        "stopped": outcome.stopped,
        "pilot_seconds": outcome.pilot_seconds,
        "pilot_calls": outcome.pilot_calls,
        "estimate_seconds": est.seconds,
        "estimate_calls": est.calls,
        "actual_seconds": outcome.spent_seconds,
        "actual_calls": outcome.spent_calls,
        # the estimate includes the holdout, which runs only when a point was chosen
        "estimate_seconds_for_what_ran": expected_seconds,
        "estimate_calls_for_what_ran": expected_calls,
        "seconds_ratio": outcome.spent_seconds / expected_seconds if expected_seconds else None,
        "calls_ratio": outcome.spent_calls / expected_calls if expected_calls else None,
        "total_wall_seconds": wall,
        "baseline": data["baseline"]["values"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(EXAMPLES))
    parser.add_argument("--trials", type=int)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    previous: dict[str, Any] = {}
    if RESULTS.exists():
        previous = {r["example"]: r for r in json.loads(RESULTS.read_text()).get("results", [])}
    for example in args.only or list(EXAMPLES):
        trials, limit, split = EXAMPLES[example]
        prepare(example)
        out = ROOT / ".relayflow" / "optimize-bench" / example
        result = measure(example, args.trials or trials, args.limit or limit, split, out)
        previous[example] = result
        ratio = result["seconds_ratio"]
        print(
            f"{example}: {result['points']} settings, front {result['front']}, improving on dev "
            f"{result['improving_on_dev']}, recommended {result['holdout_recommended']}; after the "
            f"pilot {result['actual_seconds']:.1f} s / {result['actual_calls']} calls against the "
            f"estimate {result['estimate_seconds_for_what_ran']:.1f} s / "
            f"{result['estimate_calls_for_what_ran']:.0f} calls"
            + (f" (time x{ratio:.2f}, calls x{result['calls_ratio'] or 0:.2f})" if ratio else "")
        )
        print(f"  {result['verdict']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    import platform

    RESULTS.write_text(
        json.dumps(
            {
                "machine": f"{platform.machine()}, Python {platform.python_version()}",
                "results": list(previous.values()),
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
