"""The peers of the orchestration benchmark: W1, W2 and W3 in bare asyncio and in LangGraph.

W1 and W3 return the seconds of each counted run; W2 returns the seconds for all runs at once.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypedDict

STEPS = ("ingest", "preprocess", "infer", "validate", "feedback")
IO_SECONDS = 0.05  # W2: the infer step awaits this long, like a model call

Record = dict[str, Any]


def check_output(output: Record, n: int) -> None:
    """Fail loudly when a run did not pass through all five steps (a benchmark must not lie)."""
    missing = [step for step in STEPS if output.get(step) is not True]
    if missing or output.get("n") != n:
        raise RuntimeError(f"run {n} returned {output!r}: steps {missing} did not run")


# --- bare asyncio: the floor --------------------------------------------------------------


async def _ingest(record: Record) -> Record:
    return {**record, "ingest": True}


async def _preprocess(record: Record) -> Record:
    return {**record, "preprocess": True}


async def _infer(record: Record) -> Record:
    return {**record, "infer": True}


async def _infer_io(record: Record) -> Record:
    await asyncio.sleep(IO_SECONDS)
    return {**record, "infer": True}


async def _validate(record: Record) -> Record:
    return {**record, "validate": True}


async def _feedback(record: Record) -> Record:
    return {**record, "feedback": True}


Step = Callable[[Record], Awaitable[Record]]
_W1_STEPS: tuple[Step, ...] = (_ingest, _preprocess, _infer, _validate, _feedback)
_W2_STEPS: tuple[Step, ...] = (_ingest, _preprocess, _infer_io, _validate, _feedback)


async def _pipeline(record: Record, steps: tuple[Step, ...]) -> Record:
    for step in steps:
        record = await step(record)
    return record


def asyncio_w1(runs: int, warmup: int) -> list[float]:
    async def main() -> list[float]:
        timings: list[float] = []
        for i in range(warmup + runs):
            start = time.perf_counter()
            output = await _pipeline({"n": i}, _W1_STEPS)
            elapsed = time.perf_counter() - start
            check_output(output, i)
            if i >= warmup:
                timings.append(elapsed)
        return timings

    return asyncio.run(main())


def asyncio_w2(runs: int, warmup: int) -> float:
    async def batch(first: int, count: int) -> None:
        records = range(first, first + count)
        outputs = await asyncio.gather(*(_pipeline({"n": i}, _W2_STEPS) for i in records))
        for i, output in zip(records, outputs, strict=True):
            check_output(output, i)

    async def main() -> float:
        await batch(0, warmup)
        start = time.perf_counter()
        await batch(warmup, runs)
        return time.perf_counter() - start

    return asyncio.run(main())


def open_sqlite(path: Path) -> sqlite3.Connection:
    """A connection at the durability W3 asks for, the same for every engine: WAL with
    synchronous=NORMAL, so a committed step survives kill -9 of the process (the OS holds the
    WAL) without an fsync per commit. relayflow's store uses the same two settings."""
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _open_steps_table(path: Path) -> sqlite3.Connection:
    conn = open_sqlite(path)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS steps ("
        "run_id INTEGER NOT NULL, step TEXT NOT NULL, data TEXT NOT NULL, "
        "PRIMARY KEY (run_id, step))"
    )
    conn.commit()
    return conn


def asyncio_w3(runs: int, warmup: int, db: Path) -> list[float]:
    """W1 with each finished step written and committed before the next one starts."""
    conn = _open_steps_table(db)

    async def durable_run(record: Record) -> Record:
        run_id = record["n"]
        for step in _W1_STEPS:
            record = await step(record)
            conn.execute(
                "INSERT INTO steps (run_id, step, data) VALUES (?, ?, ?)",
                (run_id, step.__name__, json.dumps(record)),
            )
            conn.commit()
        return record

    async def main() -> list[float]:
        timings: list[float] = []
        for i in range(warmup + runs):
            start = time.perf_counter()
            output = await durable_run({"n": i})
            elapsed = time.perf_counter() - start
            check_output(output, i)
            if i >= warmup:
                timings.append(elapsed)
        return timings

    try:
        return asyncio.run(main())
    finally:
        conn.close()


# --- LangGraph 1.2.22 -----------------------------------------------------------------------


class _State(TypedDict, total=False):
    n: int
    ingest: bool
    preprocess: bool
    infer: bool
    validate: bool
    feedback: bool


def _sync_node(name: str) -> Callable[[_State], _State]:
    def node(state: _State) -> _State:
        return {name: True}  # type: ignore[misc]  # LangGraph nodes return the keys they change

    return node


def _async_node(name: str, io_seconds: float = 0.0) -> Callable[[_State], Awaitable[_State]]:
    async def node(state: _State) -> _State:
        if io_seconds:
            await asyncio.sleep(io_seconds)
        return {name: True}  # type: ignore[misc]

    return node


def _build_graph(nodes: dict[str, Any]) -> Any:
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(_State)
    previous = START
    for name, node in nodes.items():
        graph.add_node(name, node)
        graph.add_edge(previous, name)
        previous = name
    graph.add_edge(previous, END)
    return graph


def langgraph_w1(runs: int, warmup: int) -> list[float]:
    app = _build_graph({name: _sync_node(name) for name in STEPS}).compile()
    timings: list[float] = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        output = app.invoke({"n": i})
        elapsed = time.perf_counter() - start
        check_output(output, i)
        if i >= warmup:
            timings.append(elapsed)
    return timings


def langgraph_w2(runs: int, warmup: int) -> float:
    # Every node async: a sync node under ainvoke would go through a thread pool, which is slower.
    nodes = {name: _async_node(name, IO_SECONDS if name == "infer" else 0.0) for name in STEPS}
    app = _build_graph(nodes).compile()

    async def batch(first: int, count: int) -> None:
        records = range(first, first + count)
        outputs = await asyncio.gather(*(app.ainvoke({"n": i}) for i in records))
        for i, output in zip(records, outputs, strict=True):
            check_output(output, i)

    async def main() -> float:
        await batch(0, warmup)
        start = time.perf_counter()
        await batch(warmup, runs)
        return time.perf_counter() - start

    return asyncio.run(main())


def langgraph_w3(runs: int, warmup: int, db: Path) -> list[float]:
    """SqliteSaver on a file, a thread per run, durability="sync": each step is saved before the
    next one starts (the default "async" saves in the background and can lose the last step)."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    # SqliteSaver leaves synchronous at SQLite's default (FULL: an fsync per commit, several times
    # slower on this disk); it gets the same NORMAL as the others, to compare like with like.
    conn = open_sqlite(db)
    try:
        saver = SqliteSaver(conn)
        app = _build_graph({name: _sync_node(name) for name in STEPS}).compile(checkpointer=saver)
        timings: list[float] = []
        for i in range(warmup + runs):
            config = {"configurable": {"thread_id": f"run-{i}"}}
            start = time.perf_counter()
            output = app.invoke({"n": i}, config, durability="sync")
            elapsed = time.perf_counter() - start
            check_output(output, i)
            if i >= warmup:
                timings.append(elapsed)
        return timings
    finally:
        conn.close()
