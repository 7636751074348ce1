"""Load on ``relayflow serve``: 2,000 runs submitted by 50 concurrent clients (loopback) while a
reviewer lists and decides the review queue; then every run must be final, none lost and none
duplicated. Measures submission throughput and latency and the time until every run is final.

Prints a table and writes ``benchmarks/results/server_load.json``. SQLite always; PostgreSQL too
when ``RELAYFLOW_TEST_PG_URL`` is set (``source scripts/test-services.sh``): the script uses its
own database ``relayflow_load`` on that server, created and dropped here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).resolve().parent / "results" / "server_load.json"
FINAL = ("succeeded", "failed", "cancelled")
NAME = "load"

#: prep fails on purpose for a few items (a final state with a reason); every tenth item
#: goes to a person; done runs after the review
WORKFLOW = """\
name: load
workflow:
  - name: prep
    type: transform
    script: prep.py
  - name: check
    type: human_review
    when: "n % 10 == 0"
    instructions: Approve, or correct the count.
  - name: done
    type: transform
    script: done.py
"""
SCRIPTS = {
    "prep.py": (
        "def transform(record):\n"
        "    if record['n'] % 250 == 7:\n"
        "        raise ValueError(f\"item {record['n']} is refused by the load workflow\")\n"
        "    return {**record, 'prepped': True}\n"
    ),
    "done.py": "def transform(record):\n    return {**record, 'done': True}\n",
}


def fails(n: int) -> bool:
    return n % 250 == 7


def escalates(n: int) -> bool:
    return n % 10 == 0 and not fails(n)


def write_workflow(folder: Path) -> Path:
    for name, source in SCRIPTS.items():
        (folder / name).write_text(source)
    path = folder / "load.yaml"
    path.write_text(WORKFLOW)
    return path


# ---- driving the server -------------------------------------------------------------------------


@dataclass
class Load:
    """What one load run saw from the clients' side."""

    submitted: list[tuple[int, str]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    decisions: Counter[str] = field(default_factory=Counter)
    conflicts: int = 0
    submit_seconds: float = 0.0
    final_seconds: float = 0.0

    def figures(self) -> dict[str, Any]:
        ms = sorted(x * 1000 for x in self.latencies)
        cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
        return {
            "submitted": len(self.submitted),
            "submit_errors": len(self.errors),
            "throughput_rps": len(self.submitted) / self.submit_seconds,
            "latency_ms": {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": ms[-1]},
            "all_final_s": self.final_seconds,
            "decisions": dict(self.decisions),
            "decision_conflicts": self.conflicts,
        }


async def drive(
    url: str,
    operator: str,
    reviewer: str,
    *,
    runs: int,
    clients: int,
    workflow: str = NAME,
    timeout: float = 600.0,  # noqa: ASYNC109 - the load run's length, passed on to the client, not a wait
) -> Load:
    """Submit ``runs`` runs from ``clients`` concurrent clients while one reviewer decides
    the queue (every 20th item corrected, the rest approved); return when every run is final."""
    load = Load()
    items = iter(range(runs))  # shared: each client takes the next item
    submitting = asyncio.Event()
    started = time.perf_counter()
    deadline = started + timeout

    async def submitter() -> None:
        headers = {"Authorization": f"Bearer {operator}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as c:
            for n in items:
                body = {"input": {"n": n}, "item_key": str(n)}
                t0 = time.perf_counter()
                try:
                    answer = await c.post(f"/v1/workflows/{workflow}/runs", json=body)
                except httpx.TransportError as exc:  # not retried: a retry could duplicate
                    load.errors.append(f"item {n}: {type(exc).__name__}: {exc}")
                    continue
                load.latencies.append(time.perf_counter() - t0)
                if answer.status_code == 202:
                    load.submitted.append((n, answer.json()["run_id"]))
                else:
                    load.errors.append(f"item {n}: {answer.status_code} {answer.text[:200]}")

    async def decide() -> None:
        headers = {"Authorization": f"Bearer {reviewer}"}
        decided: set[str] = set()
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as c:
            while True:
                expected = sum(1 for n, _ in load.submitted if escalates(n))
                if submitting.is_set() and len(decided) >= expected:
                    return
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{len(decided)} of {expected} reviews decided")
                queue = await c.get("/v1/reviews", params={"workflow": workflow, "limit": 1000})
                queue.raise_for_status()
                pending = [r for r in queue.json() if r["review_id"] not in decided]
                if not pending:
                    await asyncio.sleep(0.05)
                    continue
                progress = len(decided)
                for item in pending:
                    review_id, n = item["review_id"], item["input"]["n"]
                    if n % 20 == 0:
                        kind = "correct"
                        body: dict[str, Any] | None = {
                            "output": {**item["output"], "corrected": True}
                        }
                    else:
                        kind, body = "approve", None
                    answer = await c.post(f"/v1/reviews/{review_id}/{kind}", json=body)
                    if answer.status_code == 200:
                        decided.add(review_id)
                        load.decisions[kind] += 1
                    elif answer.status_code == 409:  # still parking: the next round retries
                        load.conflicts += 1
                    else:
                        raise RuntimeError(
                            f"{kind} {review_id}: {answer.status_code} {answer.text}"
                        )
                if len(decided) == progress:
                    await asyncio.sleep(0.05)

    reviewing = asyncio.create_task(decide())
    await asyncio.gather(*(submitter() for _ in range(clients)))
    load.submit_seconds = time.perf_counter() - started
    submitting.set()
    await reviewing
    headers = {"Authorization": f"Bearer {operator}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as c:
        while True:
            open_runs = 0
            for status in ("queued", "running", "waiting_review"):
                listed = await c.get(
                    "/v1/runs", params={"workflow": workflow, "status": status, "limit": 1}
                )
                listed.raise_for_status()
                open_runs += len(listed.json())
            if not open_runs:
                break
            if time.perf_counter() > deadline:
                raise TimeoutError("runs still open after the deadline")
            await asyncio.sleep(0.05)
    load.final_seconds = time.perf_counter() - started
    return load


def verify(store_url: str, load: Load, runs: int, workflow: str = NAME) -> dict[str, Any]:
    """Read the store (after the server stopped): exactly one run per submitted item, each
    final as its input says, every escalated item decided once. ``problems`` lists what is not."""
    from sqlalchemy import select

    from relayflow.store import schema
    from relayflow.store.sql_store import SqlStore

    store = SqlStore(store_url)
    try:
        with store.engine.connect() as conn:
            t, r = schema.runs, schema.reviews
            rows = conn.execute(
                select(t.c.run_id, t.c.item_key, t.c.status, t.c.error).where(
                    t.c.workflow == workflow
                )
            ).all()
            reviews = conn.execute(
                select(r.c.run_id, r.c.status).where(r.c.workflow == workflow)
            ).all()
    finally:
        store.close()
    problems: list[str] = list(load.errors)
    answered = Counter(run_id for _, run_id in load.submitted)
    stored = Counter(row.run_id for row in rows)
    if len(load.submitted) != runs:
        problems.append(f"{len(load.submitted)} of {runs} submissions accepted")
    if dupes := [k for k, v in answered.items() if v > 1]:
        problems.append(f"run ids answered twice: {dupes[:5]}")
    if lost := set(answered) - set(stored):
        problems.append(f"{len(lost)} submitted runs missing from the store: {sorted(lost)[:5]}")
    if extra := set(stored) - set(answered):
        problems.append(f"{len(extra)} runs in the store nobody submitted: {sorted(extra)[:5]}")
    if twice := [k for k, v in Counter(row.item_key for row in rows).items() if v > 1]:
        problems.append(f"items run twice: {twice[:5]}")
    by_id = {row.run_id: row for row in rows}
    for n, run_id in load.submitted:
        row = by_id.get(run_id)
        if row is None:
            continue
        want = "failed" if fails(n) else "succeeded"
        if row.status != want or row.item_key != str(n):
            problems.append(f"run {run_id} (item {n}): {row.status}, expected {want}")
        elif want == "failed" and not row.error:
            problems.append(f"run {run_id} failed without a reason")
    escalated = sum(1 for n, _ in load.submitted if escalates(n))
    decided = Counter(status for _, status in reviews)
    if len(reviews) != escalated or decided["pending"]:
        problems.append(f"{len(reviews)} reviews ({dict(decided)}), expected {escalated} decided")
    if sum(load.decisions.values()) != escalated:
        problems.append(f"{dict(load.decisions)} decisions made, expected {escalated}")
    statuses = Counter(row.status for row in rows)
    return {
        "runs_in_store": len(rows),
        "by_status": dict(statuses),
        "reviews": dict(decided),
        "problems": problems[:20],
    }


# ---- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(store: str, folder: Path, workers: int) -> Iterator[str]:
    """``relayflow serve`` on a free loopback port; stopped with SIGTERM (the store flushes)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (folder / "server.log").open("wb")
    command = [sys.executable, "-m", "relayflow", "serve", "--store", store, "--port", str(port)]
    command += ["--workers", str(workers), "--log-level", "warning"]
    command += ["--workflow-root", str(folder)]  # the workflow is registered by its path
    process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - our own server command, argv without a shell
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the server did not start: {(folder / 'server.log').read_text()}"
                )
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)
        log.close()


def prepare(store: str, folder: Path) -> tuple[dict[str, str], Path]:
    """Tokens (admin, operator, reviewer) in the store, and the workflow's file."""
    from relayflow.govern.access import TokenStore, parse_grant
    from relayflow.store.sql_store import SqlStore

    writer = SqlStore(store)
    try:
        tokens = TokenStore(writer.engine)
        made = {
            who: tokens.create(who, [parse_grant(grant)])[0]
            for who, grant in (
                ("admin", "*=admin"),
                ("operator", f"{NAME}=operator"),
                ("reviewer", f"{NAME}=reviewer"),
            )
        }
    finally:
        writer.close()
    return made, write_workflow(folder)


def register(url: str, admin: str, path: Path) -> None:
    answer = httpx.post(
        f"{url}/v1/workflows",
        json={"path": str(path)},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=60,
    )
    if answer.status_code != 201:
        raise RuntimeError(f"registering the workflow failed: {answer.text}")


def one_round(store: str, folder: Path, runs: int, clients: int, workers: int) -> dict[str, Any]:
    tokens, path = prepare(store, folder)
    with serve(store, folder, workers) as url:
        register(url, tokens["admin"], path)
        load = asyncio.run(
            drive(url, tokens["operator"], tokens["reviewer"], runs=runs, clients=clients)
        )
    return {**load.figures(), **verify(store, load, runs)}


def fresh_postgres(base: str) -> str:
    """A database of its own (``relayflow_load``) on the server of ``base``, emptied."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from relayflow.store.schema import metadata

    url = make_url(base).set(database="relayflow_load")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = 'relayflow_load'")
        ).scalar()
        if not exists:
            conn.execute(text("CREATE DATABASE relayflow_load"))
    admin.dispose()
    engine = create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()
    return url.render_as_string(hide_password=False)


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def spread(values: list[float]) -> dict[str, float]:
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    return {
        "throughput_rps": spread([r["throughput_rps"] for r in rounds]),
        "p50_ms": spread([r["latency_ms"]["p50"] for r in rounds]),
        "p95_ms": spread([r["latency_ms"]["p95"] for r in rounds]),
        "p99_ms": spread([r["latency_ms"]["p99"] for r in rounds]),
        "all_final_s": spread([r["all_final_s"] for r in rounds]),
        "decisions": spread([float(sum(r["decisions"].values())) for r in rounds]),
        "correct": all(not r["problems"] for r in rounds),
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    def cell(s: dict[str, float], digits: int) -> str:
        return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"

    lines = [
        "| store | submissions/s | p50 ms | p95 ms | p99 ms | all final (s) | reviews decided "
        "| none lost or duplicated |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for backend, result in results.items():
        s = result["summary"]
        lines.append(
            f"| {backend} | {cell(s['throughput_rps'], 0)} | {cell(s['p50_ms'], 1)} "
            f"| {cell(s['p95_ms'], 1)} | {cell(s['p99_ms'], 1)} | {cell(s['all_final_s'], 1)} "
            f"| {s['decisions']['median']:.0f} | {'yes' if s['correct'] else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="fresh server and store each")
    parser.add_argument("--workers", type=int, default=8, help="the server's --workers")
    parser.add_argument("--backends", nargs="+", choices=("sqlite", "postgres"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from orchestration import machine_info, write_json

    pg = os.environ.get("RELAYFLOW_TEST_PG_URL")
    backends = args.backends or (["sqlite", "postgres"] if pg else ["sqlite"])
    results: dict[str, dict[str, Any]] = {}
    for backend in backends:
        rounds = []
        for i in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="relayflow-load-") as tmp:
                folder = Path(tmp)
                if backend == "sqlite":
                    store = str(folder / "runs.db")
                elif pg:
                    store = fresh_postgres(pg)
                else:
                    sys.exit(
                        "postgres: set RELAYFLOW_TEST_PG_URL (source scripts/test-services.sh)"
                    )
                outcome = one_round(store, folder, args.runs, args.clients, args.workers)
            rounds.append(outcome)
            print(
                f"{backend} round {i + 1}: {outcome['throughput_rps']:.0f} req/s, "
                f"p95 {outcome['latency_ms']['p95']:.1f} ms, all final in "
                f"{outcome['all_final_s']:.1f} s, {outcome['by_status']}, "
                f"problems: {outcome['problems'] or 'none'}",
                flush=True,
            )
        results[backend] = {"rounds": rounds, "summary": summarize(rounds)}
    print(table(results))
    write_json(
        args.out,
        {
            "benchmark": "server_load",
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "runs": args.runs,
            "clients": args.clients,
            "workers": args.workers,
            "repeat": args.repeat,
            "machine": machine_info(),
            "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "results": results,
        },
    )
    if not all(r["summary"]["correct"] for r in results.values()):
        sys.exit("some runs were lost, duplicated or not final: see the problems above")


if __name__ == "__main__":
    main()
