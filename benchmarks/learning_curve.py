"""The learning curve of the customer-support example, streamed from zero labels: the tickets
run one at a time in file order, every escalated ticket is decided by the golden reviewer (as a
person would: approve a right intent, correct a wrong one), and the workflow's Learn step refits
the learned intent model in the background every 20 new labels, so later tickets meet a model
learned from the earlier ones' reviews. The labelled-history line of the Learn step is removed,
so nothing is known at the start; golden holdout tickets are reviewed but never learned from.

Per window of ``--window`` tickets: the agents' accuracy (ClassifyIntent's answer before any
review, against the golden intent; an abstention counts as wrong) and the share escalated to a
person. Writes ``benchmarks/results/learning_curve.json`` and ``learning_curve.png``.

    .venv/bin/python benchmarks/learning_curve.py --limit 200      # about 15 min on 2 cores
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from orchestration import machine_info, write_json

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "customer_support"
RESULTS = Path(__file__).resolve().parent / "results"


def fresh_copy(folder: Path) -> Path:
    """The example in ``folder`` without its labelled history and without a fitted model."""
    shutil.copytree(EXAMPLE, folder / "cs", ignore=shutil.ignore_patterns("models", "__pycache__"))
    workflow = folder / "cs" / "workflow.yaml"
    lines = workflow.read_text().splitlines(keepends=True)
    workflow.write_text("".join(line for line in lines if not line.strip().startswith("history:")))
    return workflow


async def stream(workflow_file: Path, store: str, limit: int) -> list[dict[str, Any]]:
    from rich.progress import Progress

    import relayflow
    from relayflow.bench.reviewer import GoldenReviewer, matches
    from relayflow.engine.batch import source_agent, source_records
    from relayflow.engine.factory import build_runner
    from relayflow.learn.references import References

    workflow = relayflow.load_workflow(workflow_file)
    evaluate = workflow.spec.evaluate
    assert evaluate is not None  # noqa: S101 - the example has an evaluate: section
    references = References(evaluate, workflow.base_dir)
    reviewer = GoldenReviewer(references)
    rows: list[dict[str, Any]] = []
    async with build_runner(workflow, store=store, consumers=[reviewer]) as runner:
        learn: Any = next(n.agent for n in runner.plan.nodes if n.name == "Learn")
        with Progress() as progress:
            task = progress.add_task("tickets", total=limit)
            async for record in source_records(source_agent(runner), limit):
                started = time.perf_counter()
                result = await runner.run(record, item_key=str(record.get("id")))
                escalated = result.status == "waiting_review"
                assert runner.store is not None  # noqa: S101 - the runner was given one
                steps = {s.step: s for s in runner.store.steps(result.run_id)}
                classify = steps["ClassifyIntent"]
                answer = (classify.output or {}).get(evaluate.prediction)
                while result.status == "waiting_review":
                    result = await reviewer.review(runner, result)
                reference = references.lookup(result.output)
                rows.append(
                    {
                        "id": record.get("id"),
                        "escalated": escalated,
                        "agent_right": reference is not None and matches(answer, reference),
                        "answered_by": classify.versions.get("answered_by", ""),
                        "confidence": classify.confidence,
                        "seconds": time.perf_counter() - started,
                        "fits": len(learn.outcomes),
                    }
                )
                progress.advance(task)
        await learn.wait()
        fits = [
            {"decision": o.decision, "train_rows": o.train_rows, "golden": o.scores.as_dict()}
            for o in learn.outcomes
        ]
    rows.append({"fits": fits, "errors": list(learn.errors)})
    return rows


def windows(rows: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    out = []
    for start in range(0, len(rows), size):
        part = rows[start : start + size]
        out.append(
            {
                "items": f"{start + 1}-{start + len(part)}",
                "accuracy": sum(r["agent_right"] for r in part) / len(part),
                "escalated": sum(r["escalated"] for r in part) / len(part),
                "learned_answered": sum(r["answered_by"].startswith("intent_model") for r in part)
                / len(part),
            }
        )
    return out


def plot(curve: list[dict[str, Any]], size: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ends = [int(w["items"].split("-")[1]) for w in curve]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(ends, [w["accuracy"] for w in curve], marker="o", label="agents' accuracy")
    ax.plot(ends, [w["escalated"] for w in curve], marker="s", label="escalated to a person")
    ax.axhline(0.3, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel(f"tickets streamed (windows of {size})")
    ax.set_ylim(0, 1.02)
    ax.set_title("customer support, learning from reviews from zero labels")
    ax.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--window", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workflow = fresh_copy(Path(tmp))
        started = time.perf_counter()
        rows = asyncio.run(stream(workflow, str(Path(tmp) / "runs.db"), args.limit))
        wall = time.perf_counter() - started
    tail = rows.pop()
    curve = windows(rows, args.window)
    below = next((w["items"] for w in curve if w["escalated"] < 0.3), None)
    RESULTS.mkdir(exist_ok=True)
    plot(curve, args.window, RESULTS / "learning_curve.png")
    result = {
        "command": "python benchmarks/learning_curve.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "items": len(rows),
        "window": args.window,
        "wall_seconds": round(wall, 1),
        "curve": curve,
        "first_window_below_30pct_escalated": below,
        "fits": tail["fits"],
        "errors": tail["errors"],
    }
    write_json(RESULTS / "learning_curve.json", result)
    for w in curve:
        print(f"{w['items']:>9}  accuracy {w['accuracy']:6.1%}  escalated {w['escalated']:6.1%}")
    print(f"first window under 30 % escalated: {below}; {len(tail['fits'])} fits; {wall:.0f} s")
    print(json.dumps(tail["errors"]) if tail["errors"] else "")


if __name__ == "__main__":
    main()
