"""Import time (fresh interpreters) and installed size of relayflow, next to LangGraph's.

Prints a table and writes ``benchmarks/results/import_time.json``.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from orchestration import machine_info, write_json

RESULTS = Path(__file__).resolve().parent / "results" / "import_time.json"
GOAL_MS = 150.0  # BENCHMARKS.md: `import relayflow` <= 150 ms
PASS = "python -c pass (absolute)"  # noqa: S105 - a row label, no password
STATEMENTS = {
    "relayflow": "import relayflow",
    "relayflow API": "from relayflow import Runner, load_workflow",
    "langgraph": "from langgraph.graph import StateGraph",
    "asyncio (floor)": "import asyncio",
}


def wall(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)  # noqa: S603 - this Python, argv without a shell
    return time.perf_counter() - start


def top_level_imports(statement: str) -> dict[str, float]:
    """Cumulative seconds of each top-level import that ``python -X importtime`` reports."""
    proc = subprocess.run(  # noqa: S603 - this Python, argv without a shell
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not line.startswith("import time:") or "cumulative" in parts[1]:
            continue
        name = parts[2]
        if name.startswith(" ") and not name.startswith("  "):  # depth 0: "| name"
            found[name.strip()] = float(parts[1]) / 1e6
    return found


def import_times(repeat: int) -> dict[str, dict[str, Any]]:
    """Median over ``repeat`` fresh interpreters of each statement, with min and max."""
    startup = set(top_level_imports("pass"))
    walls: dict[str, list[float]] = {label: [] for label in [PASS, *STATEMENTS]}
    cumulative: dict[str, list[float]] = {label: [] for label in STATEMENTS}
    for _ in range(repeat):  # interleaved, so machine noise spreads over every statement
        walls[PASS].append(wall("pass"))
        for label, statement in STATEMENTS.items():
            walls[label].append(wall(statement))
            found = top_level_imports(statement)
            cumulative[label].append(sum(s for n, s in found.items() if n not in startup))
    baseline = statistics.median(walls[PASS])
    report: dict[str, dict[str, Any]] = {}
    for label, times in walls.items():
        extra = [t - baseline for t in times] if label in STATEMENTS else times
        row = {"statement": STATEMENTS.get(label, "pass"), "wall_minus_pass_s": _spread(extra)}
        if label in cumulative:
            row["importtime_cumulative_s"] = _spread(cumulative[label])
        report[label] = row
    return report


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _dist_files_size(dist: md.Distribution) -> int:
    total = 0
    for file in dist.files or []:
        path = Path(str(dist.locate_file(file)))
        if path.is_file():
            total += path.stat().st_size
    return total


def _is_editable(dist: md.Distribution) -> bool:
    text = dist.read_text("direct_url.json")
    return bool(text and json.loads(text).get("dir_info", {}).get("editable"))


def package_size(name: str) -> tuple[int, str]:
    """Bytes the distribution installs (its RECORD), or its source folder for an editable one."""
    dist = md.distribution(name)
    if not _is_editable(dist):
        return _dist_files_size(dist), "files of the installed distribution"
    spec = importlib.util.find_spec(name.replace("-", "_"))
    folders = list(spec.submodule_search_locations or []) if spec else []
    files = [p for f in folders for p in Path(f).rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files if "__pycache__" not in p.parts)
    return total, "editable install: the package's source files (what a wheel holds)"


def closure_size(name: str) -> tuple[int, list[str]]:
    """Bytes of ``name`` and every dependency it needs without extras, as installed here."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [canonicalize_name(name)]
    total = 0
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            dist = md.distribution(current)
        except md.PackageNotFoundError:
            continue  # an optional dependency for another platform
        total += package_size(current)[0] if current == name else _dist_files_size(dist)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return total, sorted(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="fresh interpreters per statement")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file to write")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    times = import_times(args.repeat)
    table = Table(title=f"Import time: median of {args.repeat} fresh interpreters (min-max)")
    for label in ("what", "statement", "wall - `python -c pass` ms", "-X importtime ms"):
        table.add_column(label, justify="left" if label in ("what", "statement") else "right")
    table.add_column("/ langgraph", justify="right")
    langgraph = times["langgraph"]["wall_minus_pass_s"]["median"]
    for label, row in times.items():
        cells = [_ms(row["wall_minus_pass_s"]), _ms(row.get("importtime_cumulative_s"))]
        ratio = row["wall_minus_pass_s"]["median"] / langgraph if label in STATEMENTS else None
        row["wall_vs_langgraph"] = ratio
        table.add_row(label, row["statement"], *cells, "-" if ratio is None else f"{ratio:.3g}x")
    Console(width=max(Console().width, 120)).print(table)

    sizes: dict[str, Any] = {}
    for name in ("relayflow", "langgraph"):
        own, how = package_size(name)
        closure, dists = closure_size(name)
        sizes[name] = {"package_bytes": own, "how": how, "with_dependencies_bytes": closure}
        sizes[name]["dependencies"] = dists
        print(
            f"{name}: package {own / 1e6:.2f} MB ({how}); "
            f"with its {len(dists) - 1} dependencies (no extras) {closure / 1e6:.1f} MB"
        )
    checks = []
    # The goal names `import relayflow`; the API import is what a program pays, so it is shown too.
    for label in ("relayflow", "relayflow API"):
        measured_ms = times[label]["wall_minus_pass_s"]["median"] * 1e3
        verdict = "pass" if measured_ms <= GOAL_MS else "FAIL"
        checks.append({"figure": times[label]["statement"], "goal": f"<= {GOAL_MS:.0f} ms"})
        checks[-1] |= {"measured": f"{measured_ms:.1f}ms", "result": verdict}
        print(
            f"goal `{times[label]['statement']}` <= {GOAL_MS:.0f} ms: {measured_ms:.1f} ms", end=""
        )
        print(f" -> {verdict}")
    document = {
        "benchmark": "import_time",
        "machine": machine_info(),
        "settings": {"repeat": args.repeat},
        "import": times,
        "size": sizes,
        "goals": checks,
    }
    write_json(args.out, document)
    print(f"wrote {args.out}")


def _ms(spread: dict[str, float] | None) -> str:
    if spread is None:
        return "-"
    return "{:.1f} ({:.1f}-{:.1f})".format(*(spread[k] * 1e3 for k in ("median", "min", "max")))


if __name__ == "__main__":
    main()
