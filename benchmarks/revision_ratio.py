"""Did a change slow relayflow's orchestration down? W1, W2 and W3's ratio to bare asyncio, for
this tree and for an earlier revision, measured in the same session.

Each round runs ``benchmarks/orchestration.py --engines asyncio relayflow`` once on each tree
(the earlier revision is exported with ``git archive`` into a temporary folder and imported from
there), alternating, so that both see the same machine. A ratio is relayflow's figure over bare
asyncio's in the same run (W1 and W3: the median per run; W2: the total for 200 runs at once);
the table gives the median ratio over the rounds and how much it moved. Writes
``benchmarks/results/revision_ratio.json``.

    .venv/bin/python benchmarks/revision_ratio.py b1dd83a --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from orchestration import machine_info, write_json
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "revision_ratio.json"
WORKLOADS = {"w1": "median", "w2": "total", "w3": "median"}
#: how far a ratio may move before the change counts as a regression (the house issue's bar)
TOLERANCE = 0.10


def export(revision: str, into: Path) -> Path:
    """The tree of ``revision`` under ``into`` (git archive: no worktree left behind)."""
    archive = into / "tree.tar"
    subprocess.run(  # noqa: S603 - argv without a shell; the revision is the operator's own
        ["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), revision],  # noqa: S607 - git from PATH, as a developer runs it
        check=True,
    )
    tree = into / "tree"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def ratios(tree: Path, repeat: int) -> dict[str, float]:
    """One run of the orchestration benchmark on ``tree``: relayflow / asyncio per workload."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    script = tree / "benchmarks" / "orchestration.py"
    command = [sys.executable, str(script), "--engines", "asyncio", "relayflow"]
    subprocess.run(  # noqa: S603 - this Python on our own benchmark script, no shell
        [*command, "--repeat", str(repeat)], cwd=tree, env=env, check=True, capture_output=True
    )
    cells = json.loads((tree / "benchmarks" / "results" / "orchestration.json").read_text())
    out: dict[str, float] = {}
    for workload, figure in WORKLOADS.items():
        mine = _median(cells["cells"][f"relayflow/{workload}"], figure)
        floor = _median(cells["cells"][f"asyncio/{workload}"], figure)
        out[workload] = mine / floor
    return out


def _median(cell: dict[str, Any], figure: str) -> float:
    return statistics.median(p[figure] for p in cell["processes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("revision", help="the earlier revision (a commit, tag or branch)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tree, alternating")
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per cell")
    args = parser.parse_args()
    console = Console()
    seen: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": export(args.revision, Path(tmp)), "after": ROOT}
        with console.status("measuring") as status:
            for round_ in range(1, args.rounds + 1):
                for name, tree in trees.items():
                    status.update(f"round {round_}/{args.rounds}: {name}")
                    seen[name].append(ratios(tree, args.repeat))
    table = Table(title=f"ratio to bare asyncio: {args.revision} (before) and this tree (after)")
    for column in ("workload", "before", "after", "change", f"within {TOLERANCE:.0%}"):
        table.add_column(column, justify="left" if column == "workload" else "right")
    summary: dict[str, dict[str, float | bool]] = {}
    for workload in WORKLOADS:
        before = statistics.median(r[workload] for r in seen["before"])
        after = statistics.median(r[workload] for r in seen["after"])
        change = after / before - 1
        ok = change <= TOLERANCE
        summary[workload] = {"before": before, "after": after, "change": change, "ok": ok}
        table.add_row(
            workload.upper(),
            f"{before:.3f}",
            f"{after:.3f}",
            f"{change:+.1%}",
            "yes" if ok else "NO",
        )
    console.print(table)
    write_json(
        RESULTS,
        {
            "benchmark": "revision_ratio",
            "machine": machine_info(),
            "revision": args.revision,
            "settings": {"rounds": args.rounds, "repeat": args.repeat},
            "rounds": seen,
            "summary": summary,
        },
    )
    console.print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
