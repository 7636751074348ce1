"""Orchestration benchmark: W1, W2 and W3 (see BENCHMARKS.md) for relayflow and its peers.

Every cell runs in fresh processes (this script with ``--one ENGINE WORKLOAD``); the parent prints
a table and writes ``benchmarks/results/orchestration.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import peers

ENGINES = ("asyncio", "langgraph", "relayflow")
WORKLOADS = ("w1", "w2", "w3")
IDEAL_W2 = peers.IO_SECONDS
RESULTS = Path(__file__).resolve().parent / "results" / "orchestration.json"
PACKAGES = (
    *("relayflow", "langgraph", "langgraph-checkpoint", "langgraph-checkpoint-sqlite"),
    *("langchain-core", "pydantic", "sqlalchemy"),
)

# --- one cell in this process (the child) ----------------------------------------------------

_SYNC_STEP = 'def transform(record):\n    return {{**record, "{name}": True}}\n'
_ASYNC_STEP = (
    "import asyncio\n\n\nasync def transform(record):\n"
    f"    await asyncio.sleep({peers.IO_SECONDS})\n"
    '    return {{**record, "{name}": True}}\n'
)


def write_relayflow_workflow(folder: Path, workload: str) -> Path:
    """Write the five-step workflow and its scripts; W2's infer step awaits like a model call."""
    lines = [f"name: {workload}-linear-5", "workflow:"]
    for name in peers.STEPS:
        io_step = workload == "w2" and name == "infer"
        template = _ASYNC_STEP if io_step else _SYNC_STEP
        (folder / f"{name}.py").write_text(template.format(name=name), encoding="utf-8")
        run_in = "auto" if io_step else "inline"
        lines.append(
            f"  - {{name: {name}, type: transform, script: {name}.py, "
            f"function: transform, run_in: {run_in}}}"
        )
    path = folder / "workflow.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _checked(result: Any) -> int:
    if result.status != "succeeded":
        raise RuntimeError(f"run {result.run_id} ended {result.status!r}, not 'succeeded'")
    n = int(result.output.get("n", -1))
    peers.check_output(dict(result.output), n)
    return n


def relayflow_cell(workload: str, runs: int, warmup: int, folder: Path) -> list[float] | float:
    # Imported by name so that this script type-checks and runs while the API is still growing.
    relayflow: Any = importlib.import_module("relayflow")
    wf = relayflow.load_workflow(str(write_relayflow_workflow(folder, workload)))
    store = f"sqlite:///{folder / 'runs.db'}" if workload == "w3" else None

    async def sequential(runner: Any) -> list[float]:
        timings: list[float] = []
        for i in range(warmup + runs):
            start = time.perf_counter()
            result = await runner.run({"n": i})
            elapsed = time.perf_counter() - start
            if _checked(result) != i:
                raise RuntimeError(f"run {i} returned the output of run {result.output['n']}")
            if i >= warmup:
                timings.append(elapsed)
        return timings

    async def batch(runner: Any, first: int, count: int) -> None:
        records = ({"n": i} for i in range(first, first + count))
        seen = sorted([_checked(r) async for r in runner.run_batch(records, concurrency=runs)])
        if seen != list(range(first, first + count)):
            raise RuntimeError(f"run_batch returned {len(seen)} runs, expected {count}")

    async def main() -> list[float] | float:
        async with relayflow.build_runner(wf, store=store) as runner:
            if workload != "w2":
                return await sequential(runner)
            await batch(runner, 0, warmup)
            start = time.perf_counter()
            await batch(runner, warmup, runs)
            return time.perf_counter() - start

    measured = asyncio.run(main())
    if store:
        _check_steps_stored(folder / "runs.db", 5 * (warmup + runs))
    return measured


def _check_steps_stored(db: Path, expected: int) -> None:
    """W3 must really persist: every step of every run is a row in the store's steps table."""
    conn = sqlite3.connect(db)
    try:
        (stored,) = conn.execute("SELECT COUNT(*) FROM steps").fetchone()
    finally:
        conn.close()
    if stored < expected:
        raise RuntimeError(f"the store holds {stored} steps, expected {expected}")


def run_cell(engine: str, workload: str, runs: int, warmup: int) -> dict[str, float]:
    """Run one cell here and summarise it: per-run median and p95 (seconds), or W2's total."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{engine}-{workload}-") as tmp:
        folder = Path(tmp)
        measured: list[float] | float
        if engine == "relayflow":
            measured = relayflow_cell(workload, runs, warmup, folder)
        elif workload == "w1":
            measured = getattr(peers, f"{engine}_w1")(runs, warmup)
        elif workload == "w2":
            measured = getattr(peers, f"{engine}_w2")(runs, warmup)
        else:
            measured = getattr(peers, f"{engine}_w3")(runs, warmup, folder / "runs.db")
    if isinstance(measured, float):
        return {"total": measured, "runs": runs}
    return {
        "median": statistics.median(measured),
        "p95": statistics.quantiles(measured, n=100, method="inclusive")[94],
        "runs": len(measured),
    }


# --- the parent: fresh processes, summary, table, JSON -------------------------------------


@dataclass(slots=True)
class Cell:
    """One engine × workload: a summary per process, or the error that stopped it."""

    engine: str
    workload: str
    processes: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None

    def stat(self, key: str) -> tuple[float, float, float] | None:
        """(median, min, max) of ``key`` across processes, or None when there is no data."""
        values = [p[key] for p in self.processes if key in p]
        if self.error or not values:
            return None
        return statistics.median(values), min(values), max(values)

    @property
    def headline(self) -> float | None:
        found = self.stat("total" if self.workload == "w2" else "median")
        return found[0] if found else None


def spawn(engine: str, workload: str, runs: int, warmup: int, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", engine, workload]
    cmd += ["--runs", str(runs), "--warmup", str(warmup)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603 - our own benchmark commands, argv without a shell
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    last = proc.stdout.strip().splitlines()[-1:] or [""]
    try:
        answer: dict[str, Any] = json.loads(last[0])
    except json.JSONDecodeError:
        tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return {"error": tail[:300]}
    return answer


def measure(args: argparse.Namespace) -> dict[tuple[str, str], Cell]:
    cells = {(e, w): Cell(e, w) for e in args.engines for w in WORKLOADS}
    # Rounds interleave the cells, so a noisy minute on a shared machine hits all of them.
    for round_ in range(args.repeat):
        for cell in cells.values():
            if cell.error:
                continue  # an engine that failed once (API not ready, crash) is not retried
            runs = args.w2_runs if cell.workload == "w2" else args.runs
            answer = spawn(cell.engine, cell.workload, runs, args.warmup, args.timeout)
            if "error" in answer:
                cell.error = str(answer["error"])
            else:
                cell.processes.append(answer)
            shown = cell.error or ", ".join(f"{k}={v:.6g}" for k, v in answer.items())
            print(f"[{round_ + 1}/{args.repeat}] {cell.engine:9} {cell.workload}: {shown}")
    return cells


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top is not None and bottom else None


def goals(cells: dict[tuple[str, str], Cell]) -> list[dict[str, Any]]:
    """The goals of BENCHMARKS.md against the relayflow cells ("no data" when a cell is missing)."""

    def value(engine: str, workload: str) -> float | None:
        cell = cells.get((engine, workload))
        return cell.headline if cell else None

    w1, w2, w3 = (value("relayflow", w) for w in WORKLOADS)
    rows: list[tuple[str, str, float | None, str, float]] = [
        ("W1 per-run median", "<= 0.05 ms", w1, "ms", 0.05e-3),
        ("W1 LangGraph / relayflow", ">= 20x", _ratio(value("langgraph", "w1"), w1), "x", 20),
        ("W2 200 runs at once", "<= 0.06 s (1.2x ideal)", w2, "s", 0.06),
        ("W3 per-run median", "<= 0.5 ms", w3, "ms", 0.5e-3),
        ("W3 LangGraph / relayflow", ">= 10x", _ratio(value("langgraph", "w3"), w3), "x", 10),
    ]
    checks = []
    for figure, goal, measured, unit, limit in rows:
        passed = (
            None if measured is None else (measured >= limit if unit == "x" else measured <= limit)
        )
        shown = "-" if measured is None else _fmt(measured * (1e3 if unit == "ms" else 1)) + unit
        verdict = "no data" if passed is None else ("pass" if passed else "FAIL")
        checks.append({"figure": figure, "goal": goal, "measured": shown, "result": verdict})
    return checks


def _fmt(x: float) -> str:
    return (
        f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}" if x >= 1 else f"{x:.3g}"
    )


def _spread(cell: Cell, key: str, scale: float, with_range: bool = True) -> str:
    found = None if cell.error else cell.stat(key)
    if found is None:
        return "error" if cell.error else "-"
    mid, low, high = (_fmt(v * scale) for v in found)
    return f"{mid} ({low}-{high})" if with_range else mid


def _times(top: float | None, bottom: float | None) -> str:
    found = _ratio(top, bottom)
    return "-" if found is None else f"{_fmt(found)}x"


def print_tables(cells: dict[tuple[str, str], Cell], checks: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 150))
    table = Table(title="Orchestration: median over processes (min-max across processes)")
    table.add_column("engine")
    for label in ("W1 ms/run", "W1 p95", "W1 / relayflow", "W2 s (200 runs)", "W2 / ideal"):
        table.add_column(label, justify="right")
    for label in ("W3 ms/run", "W3 p95", "W3 / relayflow"):
        table.add_column(label, justify="right")
    rf1, rf3 = (cells.get(("relayflow", w)) for w in ("w1", "w3"))
    for engine in dict.fromkeys(engine for engine, _ in cells):
        w1, w2, w3 = (cells[(engine, w)] for w in WORKLOADS)
        table.add_row(
            engine,
            _spread(w1, "median", 1e3),
            _spread(w1, "p95", 1e3, with_range=False),
            _times(w1.headline, rf1.headline if rf1 else None),
            _spread(w2, "total", 1),
            _times(w2.headline, IDEAL_W2),
            _spread(w3, "median", 1e3),
            _spread(w3, "p95", 1e3, with_range=False),
            _times(w3.headline, rf3.headline if rf3 else None),
        )
    console.print(table)
    for cell in cells.values():
        if cell.error:
            console.print(f"{cell.engine} {cell.workload}: error: {cell.error}", markup=False)
    goal_table = Table(title="relayflow's goals (BENCHMARKS.md)")
    for label in ("figure", "goal", "measured", "result"):
        goal_table.add_column(label)
    for check in checks:
        goal_table.add_row(*(str(check[k]) for k in ("figure", "goal", "measured", "result")))
    console.print(goal_table)


def machine_info() -> dict[str, Any]:
    """What a reader needs to compare these numbers with theirs."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, only to label the result
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent,
    )
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "packages": versions,
        "git_commit": git.stdout.strip() or None,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write atomically, so an interrupted run never leaves half a results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--one", nargs=2, metavar=("ENGINE", "WORKLOAD"), help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per cell")
    parser.add_argument("--runs", type=int, default=1000, help="counted runs for W1 and W3")
    parser.add_argument("--w2-runs", type=int, default=200, help="concurrent runs for W2")
    parser.add_argument("--warmup", type=int, default=50, help="runs before counting starts")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per process")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file to write")
    args = parser.parse_args()

    if args.one:
        engine, workload = args.one
        try:
            summary: dict[str, Any] = run_cell(engine, workload, args.runs, args.warmup)
        except Exception as exc:  # reported as the cell's error; the parent carries on
            summary = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
        print(json.dumps(summary))
        return

    machine = machine_info()  # before measuring: the load average says how noisy the start was
    started = time.perf_counter()
    cells = measure(args)
    checks = goals(cells)
    print_tables(cells, checks)
    settings = {k: v for k, v in vars(args).items() if k not in ("one", "out")}
    document = {
        "benchmark": "orchestration",
        "machine": machine,
        "settings": settings,
        "seconds": round(time.perf_counter() - started, 1),
        "cells": {
            f"{c.engine}/{c.workload}": {"processes": c.processes, "error": c.error}
            | {k: c.stat(k) for k in ("median", "p95", "total")}
            for c in cells.values()
        },
        "goals": checks,
    }
    write_json(args.out, document)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
