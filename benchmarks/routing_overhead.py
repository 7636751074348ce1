"""Routing overhead: what a ``provider: router`` adds to one model call, per strategy.

    .venv/bin/python benchmarks/routing_overhead.py [--calls 20000] [--processes 5]

An in-memory provider answers at once, so the time measured is the router's own: choosing a
candidate, its circuit breaker, the per-attempt timeout, the metrics update and the summed
answer. Each process times ``--calls`` direct calls and the same number through a router of
each strategy (two candidates), in one event loop; the table shows the median over processes
of the per-call CPU time in µs, and the overhead (router − direct). Goal: under 50 µs per call.
"cascade+timeout" is a cascade whose YAML sets ``timeout:`` (an asyncio timer per attempt).
"most_accurate+store" is what an inference step pays: the step sets the request type (a
context variable) around each call, and the router ranks on outcomes it read from a SQLite run
store (40 reviewed answers; the read itself happens once, before timing).
Writes benchmarks/results/routing_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
STRATEGIES = ("cascade", "cheapest", "fastest", "most_accurate", "weighted")
#: rows: each strategy as configured by default, cascade with a router ``timeout:``, and
#: most_accurate keyed by step with outcomes read from a run store
VARIANTS = (*STRATEGIES, "cascade+timeout", "most_accurate+store")
GOAL_US = 50.0


class Instant:
    """A provider that answers at once (the benchmark's boundary fake)."""

    def __init__(self, name: str, confidence: float) -> None:
        from relayflow.providers.base import Price

        self.name, self.version, self.price = name, f"{name}-v1", Price(1.0, 2.0, 0.0)
        self.confidence = confidence

    async def complete(self, request: Any) -> Any:
        from relayflow.providers.base import Completion

        return Completion("yes", self.confidence, 12, 1, 0.0, self.version, label="yes")

    async def predict(self, features: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        return None


def reviewed_store(folder: Path, answers: int = 40) -> str:
    """A SQLite run store where ``answers`` answers of step ``ask`` by ``big`` were approved."""
    from sqlalchemy import insert

    from relayflow.store import schema
    from relayflow.store.database import open_database

    url = f"sqlite:///{folder / 'runs.db'}"
    engine = open_database(url, create=True)
    with engine.begin() as conn:
        for i in range(answers):
            run_id = f"run-{i}"
            output = json.dumps({"text": "x", "output": "yes"})
            conn.execute(
                insert(schema.steps).values(
                    run_id=run_id, step="ask", agent_type="inference", status="finished",
                    attempt=1, actor="agent", output=output, input_tokens=12, output_tokens=1,
                    model_calls=1, model_seconds=0.0, cost=0.0,
                    versions=json.dumps({"answered_by": "big=big-v1"}), flags="[]",
                )
            )  # fmt: skip
            conn.execute(
                insert(schema.reviews).values(
                    review_id=f"{run_id}:check", run_id=run_id, step="check", workflow="bench",
                    status="approved", reason="", input=output, output=output,
                    decision="approve", decided_output=output, created=0.0, decided=float(i),
                )
            )  # fmt: skip
    engine.dispose()
    return url


def one_process(calls: int) -> dict[str, float]:
    """µs per call, direct and through each strategy, measured in this process."""
    import tempfile

    from relayflow.providers.base import CompletionRequest
    from relayflow.providers.breaker import CircuitBreaker
    from relayflow.providers.context import request_type
    from relayflow.providers.router import Metrics, Route, RouterProvider

    request = CompletionRequest("Is this spam? " * 20, labels=["yes", "no"], max_tokens=4)
    small, big = Instant("small", 0.95), Instant("big", 0.99)

    def build(variant: str) -> RouterProvider:
        strategy, _, timeout = variant.partition("+")
        routes = [Route(p.name, p, CircuitBreaker(p.name)) for p in (small, big)]
        return RouterProvider(
            "r",
            strategy,
            routes,
            threshold=0.9 if strategy == "cascade" else None,
            weights={"small": 3, "big": 1} if strategy == "weighted" else None,
            timeout=60.0 if timeout else None,
            metrics=Metrics(),
        )

    async def timed(provider: Any, step: tuple[str, str] | None = None) -> float:
        async def call() -> Any:
            if step is None:
                return await provider.complete(request)
            token = request_type.set(step)  # as the inference agent does around its call
            try:
                return await provider.complete(request)
            finally:
                request_type.reset(token)

        for _ in range(min(1000, calls)):  # warm up
            await call()
        # CPU time of this process: the router's cost is CPU work, and a shared machine's
        # other processes would otherwise add the time this one waits for a core
        started = time.process_time()
        for _ in range(calls):
            await call()
        return (time.process_time() - started) / calls * 1e6

    async def main(folder: Path) -> dict[str, float]:
        out = {"direct": await timed(small)}
        for variant in VARIANTS:
            if variant == "most_accurate+store":
                router = build("most_accurate")
                await router.watch(reviewed_store(folder), "bench", "ask", "output")
                out[variant] = await timed(router, ("bench", "ask"))
                assert (await router.complete(request)).model == "small=small-v1"  # noqa: S101 - the benchmark's sanity check
                token = request_type.set(("bench", "ask"))
                assert (await router.complete(request)).model == "big=big-v1"  # noqa: S101 - the store's pick
                request_type.reset(token)
                await router.close()
            else:
                out[variant] = await timed(build(variant))
        return out

    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(main(Path(folder)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_process(args.calls)))
        return 0

    samples: list[dict[str, float]] = []
    for _ in range(args.processes):
        command = [sys.executable, __file__, "--child", "--calls", str(args.calls)]
        done = subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603 - our own CLI, argv without a shell
        samples.append(json.loads(done.stdout))
    direct = statistics.median(s["direct"] for s in samples)
    rows = []
    for strategy in VARIANTS:
        routed = statistics.median(s[strategy] for s in samples)
        overhead = statistics.median(s[strategy] - s["direct"] for s in samples)
        rows.append(
            {
                "strategy": strategy,
                "direct_us": round(direct, 2),
                "router_us": round(routed, 2),
                "overhead_us": round(overhead, 2),
                "ratio": round(routed / direct, 2),
                "under_goal": overhead < GOAL_US,
            }
        )

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Routing overhead per call (median of {args.processes} processes)")
    for column in ("strategy", "direct µs", "router µs", "overhead µs", "ratio", "< 50 µs"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for row in rows:
        table.add_row(
            row["strategy"],
            f"{row['direct_us']:.2f}",
            f"{row['router_us']:.2f}",
            f"{row['overhead_us']:.2f}",
            f"{row['ratio']:.1f}×",
            "yes" if row["under_goal"] else "NO",
        )
    Console().print(table)
    RESULTS.mkdir(exist_ok=True)
    result = {
        "benchmark": "routing_overhead",
        "command": "python benchmarks/routing_overhead.py "
        f"--calls {args.calls} --processes {args.processes}",
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "goal_us": GOAL_US,
        "rows": rows,
        "samples": samples,
    }
    path = RESULTS / "routing_overhead.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0 if all(row["under_goal"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
