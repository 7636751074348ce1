"""The step cache on the example workflows: a cold pass on a fresh store, then a warm rerun of
the same items in a new process on the same store, ``--rounds`` times per workflow, and one
cache-off pass for reference (``relayflow bench --warmup 0``, concurrency 2, golden reviewer).

Checks that every item's model-step outputs and confidences are the same cold and warm (the
store's ``steps`` table), times the cache's own work per step (key + put, key + get from the
database), prints medians with min–max and cold ÷ warm ratios, and writes
``benchmarks/results/cache_rerun.json``. About 15 min on 2 cores with the default limits.
``--collect-only`` rereads the bench.json files and stores of an earlier run of this script.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from orchestration import machine_info, write_json

RESULTS = Path(__file__).resolve().parent / "results" / "cache_rerun.json"
ROOT = Path(__file__).resolve().parent.parent
RELAYFLOW = Path(sys.executable).with_name("relayflow")
#: prefix of the round folders → the workflow and its model steps (the cached ones)
WORKFLOWS = {
    "cs": ("examples/customer_support/workflow.yaml", ("ClassifyIntent", "DraftReply")),
    "ds": ("examples/document_summarization/workflow.yaml", ("Summarize",)),
}
FIGURES = (
    "runs",
    "completed",
    "ttr_median",
    "ttr_p95",
    "cpw",
    "tokens_per_run",
    "model_seconds",
    "cache_hits",
    "cache_misses",
    "escalation_rate",
)
RATIOS = ("ttr_median", "ttr_p95", "cpw", "pass_wall_seconds")


def bench_args(workflow: str, limit: int, store: Path, out: Path, cache: bool) -> list[str]:
    return [
        str(RELAYFLOW),
        "bench",
        workflow,
        "--limit",
        str(limit),
        "--warmup",
        "0",
        "--cache" if cache else "--no-cache",
        "--store",
        str(store / "runs.db"),
        "--out",
        str(out),
    ]


def bench(args: list[str]) -> None:
    print("$", " ".join(args[1:]), flush=True)
    subprocess.run(args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)  # noqa: S603 - our own CLI, argv without a shell


def figures(path: Path) -> dict[str, Any]:
    """The figures of one pass's bench.json."""
    workflow = json.loads(path.read_text())["workflows"][0]
    out = {k: workflow["figures"][k] for k in FIGURES}
    out["accuracy"] = workflow["accuracy"]
    out["agent_accuracy"] = workflow["agent_accuracy"]
    out["pass_wall_seconds"] = workflow["passes"][0]["wall_seconds"]
    out["cpu_seconds"] = workflow["cpu_seconds"]
    return out


def identical(db: Path, steps: tuple[str, ...]) -> tuple[int, int]:
    """(items whose model steps gave the same output and confidence cold and warm, items)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    batches = [
        b
        for (b,) in con.execute("select batch_id from runs group by batch_id order by min(started)")
    ]
    if len(batches) != 2:
        raise SystemExit(f"{db}: expected a cold and a warm batch, found {len(batches)}")
    cold, warm = (_outputs(con, b, steps) for b in batches)
    con.close()
    return sum(cold[k] == warm.get(k) for k in cold), len(cold)


def _outputs(con: sqlite3.Connection, batch: str, steps: tuple[str, ...]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, run_id in con.execute(
        "select item_key, run_id from runs where batch_id = ?", (batch,)
    ).fetchall():
        rows = con.execute("select step, output, confidence from steps where run_id = ?", (run_id,))
        found[key] = {s: (json.loads(o), c) for s, o, c in rows if s in steps}
    return found


def cache_work(calls: int = 1000) -> dict[str, float]:
    """µs per model step for the cache's own work on a SQLite store, a DraftReply-sized entry."""
    from relayflow import load_workflow
    from relayflow.core.result import Usage
    from relayflow.engine.cache import KeyMaker
    from relayflow.store.sql_store import SqlStore

    workflow = load_workflow(ROOT / WORKFLOWS["cs"][0])
    config = next(a for a in workflow.agents if a.name == "DraftReply")
    keys = KeyMaker(config, {"model": "smollm2", "template": "t"}, lambda: "smollm2=SmolLM2@v")
    item = {"id": "", "channel": "email", "customer": "Mei Mensah", "text": "x" * 400}
    output = {**item, "intent": "account_delete", "reply": "y" * 300}
    with tempfile.TemporaryDirectory() as folder:
        store = SqlStore(str(Path(folder) / "runs.db"))
        start = time.perf_counter()
        for i in range(calls):
            store.cache.put(
                keys.key({**item, "id": str(i)}),
                workflow="cs",
                step="DraftReply",
                output=output,
                confidence=0.5,
                versions={"model": "smollm2"},
                flags=(),
                usage=Usage(300, 90, 1, 4.0, 0.0),
                ttl=None,
            )
        put = (time.perf_counter() - start) / calls * 1e6
        store.close()
        store = SqlStore(str(Path(folder) / "runs.db"))  # a new store: reads go to the database
        start = time.perf_counter()
        for i in range(calls):
            assert store.cache.get(keys.key({**item, "id": str(i)})) is not None  # noqa: S101 - the benchmark's sanity check: every read is a hit
        get = (time.perf_counter() - start) / calls * 1e6
        store.close()
    return {"key_and_put_us": put, "key_and_get_from_database_us": get}


def spread(values: list[float], unit: str = "") -> str:
    return f"{statistics.median(values):.4g}{unit} ({min(values):.4g}–{max(values):.4g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="cold/warm pairs per workflow")
    parser.add_argument("--limit-support", type=int, default=20, help="tickets per pass")
    parser.add_argument("--limit-summaries", type=int, default=10, help="papers per pass")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cachebench"))  # noqa: S108 - a default scratch folder the user may change
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--collect-only", action="store_true", help="read an earlier run")
    args = parser.parse_args()
    limits = {"cs": args.limit_support, "ds": args.limit_summaries}
    document: dict[str, Any] = {
        "benchmark": "cache_rerun",
        "machine": machine_info(),
        "cache_work": cache_work(),
        "identical_outputs": "per item, the model steps' output and confidence in the steps "
        "table of each round's store, cold batch against warm batch (joined on item_key)",
        "workflows": [],
    }
    for prefix, (workflow, steps) in WORKFLOWS.items():
        limit = limits[prefix]
        if not args.collect_only:
            for n in range(1, args.rounds + 1):
                folder = args.workdir / f"{prefix}{n}"
                folder.mkdir(parents=True, exist_ok=False)
                for phase in ("cold", "warm"):
                    bench(bench_args(workflow, limit, folder, folder / phase, cache=True))
            folder = args.workdir / f"{prefix}n"
            folder.mkdir(parents=True, exist_ok=False)
            bench(bench_args(workflow, limit, folder, folder / "nocache", cache=False))
        rounds = []
        for folder in sorted(args.workdir.glob(f"{prefix}[0-9]*")):
            if not folder.is_dir() or not folder.name[len(prefix) :].isdigit():
                continue
            cold, warm = (
                figures(folder / "cold" / "bench.json"),
                figures(folder / "warm" / "bench.json"),
            )
            same, items = identical(folder / "runs.db", steps)
            rounds.append(
                {
                    "round": folder.name,
                    "cold": cold,
                    "warm": warm,
                    "identical_outputs": [same, items],
                    "ratio": {k: cold[k] / warm[k] for k in RATIOS},
                }
            )
        reference = args.workdir / f"{prefix}n" / "nocache" / "bench.json"
        document["workflows"].append(
            {
                "workflow": workflow,
                "limit": limit,
                "command": " ".join(bench_args(workflow, limit, Path("S"), Path("OUT"), True)[1:]),
                "rounds": rounds,
                "cache_off": figures(reference) if reference.exists() else None,
            }
        )
        print(f"{workflow}, {limit} items, {len(rounds)} rounds: median (min–max)")
        for phase in ("cold", "warm"):
            got = [r[phase] for r in rounds]
            print(
                f"  {phase:4s} TTR {spread([g['ttr_median'] for g in got], ' s')}"
                f"  p95 {spread([g['ttr_p95'] for g in got], ' s')}"
                f"  CPW {spread([g['cpw'] for g in got])}"
                f"  hits/misses {[(g['cache_hits'], g['cache_misses']) for g in got]}"
                f"  agents alone {[round(g['agent_accuracy']['value'], 4) for g in got]}"
            )
        for key in RATIOS:
            print(f"  cold ÷ warm {key}: {spread([r['ratio'][key] for r in rounds], '×')}")
        print(f"  identical outputs: {[r['identical_outputs'] for r in rounds]}")
    print(f"cache work per step: {document['cache_work']}")
    write_json(args.results, document)


if __name__ == "__main__":
    main()
