"""Batch memory: 100,000 runs stream from a JSONL source through a durable two-step workflow;
the process's resident memory is sampled as they go and must stay flat.

    .venv/bin/python benchmarks/batch_memory.py [--runs 100000] [--concurrency 16]

Prints a table of RSS per 10 % of the batch, writes benchmarks/results/batch_memory.json and a
plot (batch_memory.png) when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import relayflow
from relayflow.core import events as ev

RESULTS = Path(__file__).parent / "results"

WORKFLOW = """
name: batch-memory
workflow:
  - {name: read, type: retrieval, source: items.jsonl}
  - {name: shape, type: transform, script: shape.py, run_in: inline}
  - {name: score, type: transform, script: score.py, run_in: inline}
"""


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Sampler:
    """An event consumer: counts finished runs and samples RSS every ``every`` runs."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.done = 0
        self.samples: list[tuple[int, float]] = []

    def handle(self, event: ev.Event) -> None:
        if type(event) is ev.RunFinished:
            self.done += 1
            if self.done % self.every == 0:
                self.samples.append((self.done, rss_mb()))


def write_inputs(folder: Path, runs: int) -> None:
    with open(folder / "items.jsonl", "w") as items:
        for i in range(runs):
            items.write(json.dumps({"id": i, "text": f"ticket number {i} " * 4}) + "\n")
    (folder / "shape.py").write_text(
        "def transform(r):\n    return {'id': r['id'], 'words': len(r['text'].split())}\n"
    )
    (folder / "score.py").write_text(
        "def transform(r):\n    return {**r, 'score': r['words'] * 2}\n"
    )
    (folder / "workflow.yaml").write_text(WORKFLOW)


async def run(folder: Path, runs: int, concurrency: int) -> dict[str, Any]:
    wf = relayflow.load_workflow(folder / "workflow.yaml")
    sampler = Sampler(max(1, runs // 10))
    start_rss = rss_mb()
    started = time.perf_counter()
    runner = relayflow.build_runner(wf, store=str(folder / "runs.db"), consumers=[sampler])
    async with runner:
        statuses: dict[str, int] = {}
        async for result in runner.run_batch(concurrency=concurrency):
            statuses[result.status] = statuses.get(result.status, 0) + 1
    elapsed = time.perf_counter() - started
    return {
        "runs": runs,
        "concurrency": concurrency,
        "statuses": statuses,
        "seconds": elapsed,
        "runs_per_second": runs / elapsed,
        "rss_start_mb": start_rss,
        "samples": sampler.samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relayflow-batch-memory-") as tmp:
        folder = Path(tmp)
        write_inputs(folder, args.runs)
        report = asyncio.run(run(folder, args.runs, args.concurrency))
    samples = report["samples"]
    first_tenth = samples[0][1] if samples else float("nan")
    report["rss_growth_after_first_tenth_mb"] = (
        max(rss for _, rss in samples) - first_tenth if samples else float("nan")
    )
    report["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}

    table = Table(title=f"batch memory: {args.runs:,} runs, concurrency {args.concurrency}")
    table.add_column("runs done", justify="right")
    table.add_column("RSS (MB)", justify="right")
    for done, rss in samples:
        table.add_row(f"{done:,}", f"{rss:.1f}")
    console = Console()
    console.print(table)
    console.print(
        f"{report['runs_per_second']:,.0f} runs/s; statuses {report['statuses']}; "
        f"RSS grew {report['rss_growth_after_first_tenth_mb']:.1f} MB after the first tenth"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "batch_memory.json").write_text(json.dumps(report, indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([d for d, _ in samples], [r for _, r in samples], marker="o")
    ax.set_xlabel("runs finished")
    ax.set_ylabel("resident memory (MB)")
    ax.set_ylim(bottom=0)
    ax.set_title("relayflow batch: memory while runs stream")
    fig.tight_layout()
    fig.savefig(RESULTS / "batch_memory.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
