"""`python -m relayflow` in a real process: help, a light import, and Ctrl-C stopping a batch
cleanly so that `resume --batch` finishes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.cli.cli_support import batch_id_of, summary_value

#: each item touches started-<id> and then waits (cancellably) unless a file `fast` exists
SLOW = """
import asyncio
from pathlib import Path

async def transform(record):
    here = Path(__file__).parent
    (here / f"started-{record['id']}").touch()
    if not (here / "fast").exists():
        await asyncio.sleep(120)
    return {**record, "waited": True}
"""

SLOW_WORKFLOW = """
name: slow
workflow:
  - name: Wait
    type: transform
    script: slow.py
"""


def relayflow(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relayflow", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_python_m_relayflow_help(tmp_path: Path) -> None:
    result = relayflow("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("validate", "run", "resume", "runs", "review", "feedback"):
        assert command in result.stdout


def test_importing_the_cli_does_not_import_the_engine_or_the_store() -> None:
    code = (
        "import sys, relayflow.cli\n"
        "heavy = [m for m in ('relayflow.engine.runner', 'relayflow.store.sql_store', "
        "'sqlalchemy', 'rich.progress') if m in sys.modules]\n"
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


#: `python -m relayflow ARGS`, with Ctrl-C handled as usual even when the test runner was
#: started in the background with SIGINT ignored (a child inherits that)
MAIN_WITH_SIGINT = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'relayflow'; runpy.run_module('relayflow', run_name='__main__')"
)


def test_ctrl_c_stops_in_flight_runs_and_resume_finishes_the_batch(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW)
    (tmp_path / "slow.yaml").write_text(SLOW_WORKFLOW)
    (tmp_path / "items.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(6)))
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            MAIN_WITH_SIGINT,
            "run",
            "slow.yaml",
            "--inputs",
            "items.jsonl",
            "--concurrency",
            "2",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        deadline = time.monotonic() + 90
        while len(list(tmp_path.glob("started-*"))) < 2:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the runs never started"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stdout + stderr
    batch = batch_id_of(stdout)
    assert (
        f"cancelled: 2 runs in flight were stopped; resume with relayflow resume --batch {batch}"
    ) in stderr

    (tmp_path / "fast").touch()
    resumed = relayflow("resume", "--batch", batch, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert summary_value(resumed.stdout, "succeeded") == "6"
    listing = relayflow("runs", "list", "--batch", batch, cwd=tmp_path)
    assert listing.stdout.count("succeeded") == 6


#: the same wait in a worker thread (a plain ``def``), where a cancellation cannot reach it
BLOCKING = """
import time
from pathlib import Path

def transform(record):
    here = Path(__file__).parent
    (here / f"started-{record['id']}").touch()
    if not (here / "fast").exists():
        time.sleep(120)
    return {**record, "waited": True}
"""


def _start_batch(folder: Path, items: int, concurrency: int) -> subprocess.Popen[str]:
    (folder / "items.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(items)))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relayflow",
            "run",
            "slow.yaml",
            "--inputs",
            "items.jsonl",
            "-c",
            str(concurrency),
        ],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def _wait_started(process: subprocess.Popen[str], folder: Path, count: int) -> None:
    deadline = time.monotonic() + 90
    while len(list(folder.glob("started-*"))) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the runs never started"
        time.sleep(0.05)


def _statuses(folder: Path, batch: str) -> tuple[str | None, list[str]]:
    from relayflow.store.sql_store import SqlStore

    store = SqlStore(str(folder / ".relayflow" / "runs.db"))
    try:
        record = store.get_batch(batch)
        return (record.status if record else None), [s for _k, _r, s in store.batch_runs(batch)]
    finally:
        store.close()


def test_sigterm_stops_in_flight_runs_like_ctrl_c_and_resume_finishes_the_batch(
    tmp_path: Path,
) -> None:
    (tmp_path / "slow.py").write_text(SLOW)
    (tmp_path / "slow.yaml").write_text(SLOW_WORKFLOW)
    process = _start_batch(tmp_path, 12, 8)
    try:
        _wait_started(process, tmp_path, 8)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # 143 = 128 + SIGTERM, what a shell reports for a process that SIGTERM ended (Ctrl-C: 130)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stdout + stderr
    assert summary_value(stdout, "cancelled") == "8"
    batch = batch_id_of(stdout)
    assert (
        f"cancelled: 8 runs in flight were stopped; resume with relayflow resume --batch {batch}"
    ) in stderr
    status, runs = _statuses(tmp_path, batch)
    assert (status, sorted(runs)) == ("cancelled", ["cancelled"] * 8)

    (tmp_path / "fast").touch()
    resumed = relayflow("resume", "--batch", batch, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert summary_value(resumed.stdout, "succeeded") == "12"
    assert _statuses(tmp_path, batch) == ("finished", ["succeeded"] * 12)


def test_a_second_sigterm_ends_the_process_at_once_and_the_batch_still_resumes(
    tmp_path: Path,
) -> None:
    # a step blocked in a thread keeps the first SIGTERM's clean stop waiting for it
    (tmp_path / "slow.py").write_text(BLOCKING)
    (tmp_path / "slow.yaml").write_text(SLOW_WORKFLOW)
    process = _start_batch(tmp_path, 4, 2)
    try:
        _wait_started(process, tmp_path, 2)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # not a timing assertion: two signals, not one merged pending signal
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == -signal.SIGTERM

    (tmp_path / "fast").touch()
    batch = _only_batch(tmp_path)
    resumed = relayflow("resume", "--batch", batch, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert summary_value(resumed.stdout, "succeeded") == "4"


def _only_batch(folder: Path) -> str:
    from sqlalchemy import select

    from relayflow.store.schema import batches
    from relayflow.store.sql_store import SqlStore

    store = SqlStore(str(folder / ".relayflow" / "runs.db"))  # replays the killed one's log
    try:
        [row] = store.select_committed(select(batches.c.batch_id))
    finally:
        store.close()
    return str(row.batch_id)
