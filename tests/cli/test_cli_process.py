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
