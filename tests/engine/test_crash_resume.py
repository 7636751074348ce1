"""kill -9 in the middle of a batch, then resume: no finished step runs again, items end once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from relayflow.store.sql_store import SqlStore

DRIVER = """
import asyncio, json, sys
import relayflow

async def main(workflow, store, inputs, batch_id):
    wf = relayflow.load_workflow(workflow)
    items = (json.loads(line) for line in open(inputs))
    async with relayflow.Runner(wf, store=store) as runner:
        async for _ in runner.run_batch(items, concurrency=8, batch_id=batch_id):
            pass

asyncio.run(main(*sys.argv[1:]))
"""

WORKFLOW = """
name: crash
workflow:
  - {name: prepare, type: transform, script: prepare.py, run_in: inline}
  - {name: effect, type: transform, script: effect.py}
  - {name: final, type: transform, script: final.py, run_in: inline}
"""

EFFECT = """
import asyncio, os
SIDE = {side!r}

async def transform(record):
    await asyncio.sleep(0.005)
    with open(SIDE, "a") as side:
        side.write(str(record["id"]) + "\\n")
        side.flush()
    return {{**record, "effect": True}}
"""


def _run_driver(folder: Path, store: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            DRIVER,
            str(folder / "workflow.yaml"),
            store,
            str(folder / "items.jsonl"),
            "batch-1",
        ],
        cwd=folder,
    )


def test_kill_9_mid_batch_then_resume_runs_every_item_once(tmp_path: Path) -> None:
    side = tmp_path / "side.log"
    (tmp_path / "workflow.yaml").write_text(WORKFLOW)
    (tmp_path / "prepare.py").write_text("def transform(r):\n    return {**r, 'ready': True}\n")
    (tmp_path / "effect.py").write_text(EFFECT.format(side=str(side)))
    (tmp_path / "final.py").write_text("def transform(r):\n    return {**r, 'done': True}\n")
    with open(tmp_path / "items.jsonl", "w") as items:
        for i in range(200):
            items.write(json.dumps({"id": i}) + "\n")
    db = tmp_path / "runs.db"
    store = f"sqlite:///{db}"

    process = _run_driver(tmp_path, store)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if side.exists() and len(side.read_text().split()) >= 60:
            break
        if process.poll() is not None:
            break
        time.sleep(0.005)
    assert process.poll() is None, "the batch ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    # what the killed process made durable: opening the store applies its write-ahead log
    SqlStore(store).close()
    with sqlite3.connect(db) as conn:
        committed = {
            int(json.loads(row[0])["id"])
            for row in conn.execute(
                "SELECT runs.input FROM steps JOIN runs USING (run_id) "
                "WHERE steps.step = 'effect' AND steps.status = 'finished'"
            )
        }
        unfinished = conn.execute(
            "SELECT count(*) FROM runs WHERE status != 'succeeded'"
        ).fetchone()[0]
    before = Counter(int(x) for x in side.read_text().split())
    assert 0 < len(committed) < 200
    assert len(before) < 200

    resumed = _run_driver(tmp_path, store)
    assert resumed.wait(timeout=300) == 0

    after = Counter(int(x) for x in side.read_text().split())
    # every item's side effect happened
    assert set(after) == set(range(200))
    # a step committed as finished before the kill never ran again
    assert all(after[i] == 1 for i in committed)
    # only steps in flight at the kill (at most the concurrency) may have run twice
    assert sum(n - 1 for n in after.values()) <= 8
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT item_key, status FROM runs").fetchall()
        steps = conn.execute("SELECT count(*) FROM steps WHERE status = 'finished'").fetchone()[0]
    assert len(rows) == 200
    assert len({key for key, _ in rows}) == 200
    assert {status for _, status in rows} == {"succeeded"}
    assert steps == 600
    assert unfinished >= 1
