"""The escapes of issue 9 from the process sandbox, each contained under bwrap (and, run on the
process backend, let through as its warning says); the backend choice, its probe and warning."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relayflow import sandbox
from relayflow.sandbox import Isolation, bwrap, network_namespaces, resolve_backend
from tests.sandbox_helpers import gone, last_line, pidns_members, program_uid, require, run

ROOT = os.geteuid() == 0


@pytest.fixture(params=["bwrap", "process"])
def backend(request: pytest.FixtureRequest) -> Isolation:
    return require(request.param)


def accepted(server: socket.socket) -> bool:
    """Whether a connection waits in ``server``'s backlog (someone connected)."""
    server.setblocking(False)
    try:
        conn, _ = server.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


@pytest.fixture
def unix_listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A Unix socket listening at a path on the host's filesystem."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = str(tmp_path / "s.sock")
    server.bind(path)
    server.listen(8)
    try:
        yield server, path
    finally:
        server.close()


def test_a_unix_socket_on_the_host_filesystem(
    backend: Isolation, unix_listener: tuple[socket.socket, str]
) -> None:
    server, path = unix_listener
    source = f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({path!r})\ns.close()\n"
    result = run(source, backend)
    if backend == "process":  # no network namespace stops a socket on the filesystem
        assert result.passed and accepted(server)
        return
    assert not result.passed
    assert last_line(result.stderr).startswith("FileNotFoundError")  # the path is not there
    assert not accepted(server)


def test_an_abstract_unix_socket(backend: Isolation) -> None:
    # abstract sockets belong to the network namespace
    name = f"\0relayflow-test-{os.getpid()}-{time.monotonic_ns()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(name)
    server.listen(8)
    try:
        source = f"import socket\nsocket.socket(socket.AF_UNIX).connect({name!r})\n"
        result = run(source, backend)
        if backend == "process" and not network_namespaces():
            assert result.passed and accepted(server)
            return
        assert not result.passed
        assert last_line(result.stderr).startswith("ConnectionRefusedError")
        assert not accepted(server)
    finally:
        server.close()


def test_a_tcp_listener_on_the_host_loopback(backend: Isolation) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    try:
        source = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 5).close()\n"
        result = run(source, backend)
        if backend == "process" and not network_namespaces():
            assert result.passed and accepted(server)
            return
        assert not result.passed and not accepted(server)
        # bwrap's namespace has a loopback of its own, where nothing listens
        error = "ConnectionRefusedError" if backend == "bwrap" else "Network is unreachable"
        assert error in last_line(result.stderr)
    finally:
        server.close()


def test_killing_another_process_of_the_same_user(backend: Isolation) -> None:
    # the victim runs as the program's own host uid: only the PID namespace can protect it
    uid = program_uid(backend)
    as_uid = {"user": uid, "group": uid, "extra_groups": []} if ROOT else {}
    victim = subprocess.Popen(["sleep", "60"], **as_uid)  # type: ignore[call-overload]
    try:
        result = run(f"import os, signal\nos.kill({victim.pid}, signal.SIGKILL)\n", backend)
        if backend == "process":
            assert result.passed and victim.wait(timeout=10) == -signal.SIGKILL
            return
        assert not result.passed
        assert last_line(result.stderr).startswith("ProcessLookupError")  # no such pid there
        assert victim.poll() is None  # it lives
    finally:
        victim.kill()
        victim.wait()


def test_reading_etc_shadow(backend: Isolation) -> None:
    if not Path("/etc/shadow").exists():
        pytest.skip("this host has no /etc/shadow")
    result = run("print(len(open('/etc/shadow').read()))\n", backend)
    if backend == "process" and ROOT:
        assert result.passed  # the process sandbox runs as root, which may read it
        return
    assert not result.passed
    error = "FileNotFoundError" if backend == "bwrap" else "PermissionError"
    assert last_line(result.stderr).startswith(error)


def test_host_files_outside_the_program_folder_are_not_there(
    backend: Isolation, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host data")
    project = Path(__file__).resolve().parents[1] / "pyproject.toml"  # the checkout (/work/…)
    home = Path.home()
    source = (
        "import json, os\n"
        f"for path in ({str(secret)!r}, {str(project)!r}):\n"
        "    print(os.path.exists(path))\n"
        f"print(json.dumps(os.listdir({str(home)!r}) if os.path.isdir({str(home)!r}) else []))\n"
        "print(json.dumps(os.listdir('/etc')))\n"
    )
    result = run(source, backend)
    assert result.passed, result.stderr
    *seen, home_listing, etc = result.stdout.splitlines()
    if backend == "process":
        assert seen == ["True", "True"]
        return
    assert seen == ["False", "False"]
    # of the home folder at most the way to the Python installation, and of /etc two files
    python = Path(os.path.realpath(sys.base_prefix))
    way = {python.relative_to(home).parts[0]} if python.is_relative_to(home) else set()
    assert set(json.loads(home_listing)) <= way
    assert set(json.loads(etc)) <= {"ld.so.cache", "localtime"}


def test_a_daemon_does_not_outlive_the_program(backend: Isolation, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    host.chmod(0o777)  # writable for the program whatever user it runs as
    # double fork and setsid: the daemon leaves the process group; 2 s later it writes a marker
    # into the host folder and into its own folder (made again if it was removed)
    source = (
        "import os, sys, time\n"
        "print(os.readlink('/proc/self/ns/pid'), os.getcwd(), flush=True)\n"
        "cwd = os.getcwd()\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(2)\n"
        f"        for folder in ({str(host)!r}, cwd):\n"
        "            try:\n"
        "                os.makedirs(folder, exist_ok=True)\n"
        "                open(os.path.join(folder, 'marker'), 'w').close()\n"
        "            except OSError:\n"
        "                pass\n"
        "    os._exit(0)\n"
        "os.wait()\n"
    )
    result = run(source, backend)
    assert result.passed, result.stderr
    namespace, cwd = result.stdout.split()
    time.sleep(4)  # longer than the daemon sleeps: it would have written by now
    markers = [p for p in (host / "marker", Path(cwd) / "marker") if p.exists()]
    if backend == "process":
        assert markers == [host / "marker", Path(cwd) / "marker"]  # it outlived the run
        Path(cwd, "marker").unlink()
        Path(cwd).rmdir()
        return
    assert markers == []
    assert not Path(cwd).exists()
    assert pidns_members(namespace) == []  # nothing of the program's namespace is left


def test_a_fork_bomb_is_contained_and_leaves_nothing(backend: Isolation) -> None:
    if backend == "process" and ROOT:
        pytest.skip("the kernel does not enforce RLIMIT_NPROC for root (bwrap runs as nobody)")
    source = (
        "import os, time\n"
        "print(os.readlink('/proc/self/ns/pid'), flush=True)\n"
        "forked = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        forked += 1\n"
        "except OSError as exc:\n"
        "    print(forked, exc.errno, flush=True)\n"
        "    raise\n"
    )
    result = run(source, backend)
    assert not result.passed and not result.timed_out
    namespace, forked, errno = result.stdout.split()
    assert int(forked) < sandbox.PROCESS_LIMIT and errno == "11"  # EAGAIN at the limit
    if backend == "bwrap":
        assert gone(lambda: pidns_members(namespace))  # its children died with the namespace


def test_under_bwrap_the_program_is_nobody_without_capabilities_on_a_read_only_root() -> None:
    require("bwrap")
    private = f"relayflow-private-{os.getpid()}-{time.monotonic_ns()}"
    source = (
        "import json, os\n"
        "status = dict(line.split(':\\t') for line in open('/proc/self/status').read()"
        ".splitlines() if ':\\t' in line)\n"
        "caps = [status[k].strip() for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb')]\n"
        "writes = []\n"
        "for path in ('/usr/rf-x', '/rf-x', '/etc/rf-x', '/proc/rf-x'):\n"
        "    try:\n"
        "        open(path, 'w')\n"
        "        writes.append('wrote ' + path)\n"
        "    except OSError as exc:\n"
        "        writes.append(type(exc).__name__)\n"
        f"open('/tmp/{private}', 'w').write('private tmp')\n"
        "print(json.dumps([os.getuid(), os.getgid(), os.getgroups(), caps,\n"
        "    status['NoNewPrivs'].strip(), writes, sorted(os.listdir('/tmp')), os.getcwd()]))\n"
    )
    result = run(source, "bwrap")
    assert result.passed, result.stderr
    uid, gid, groups, caps, nnp, writes, tmp, cwd = json.loads(result.stdout)
    assert (uid, gid, groups) == (bwrap.SANDBOX_UID, bwrap.SANDBOX_UID, [])
    assert caps == ["0000000000000000"] * 5
    assert nnp == "1"
    assert set(writes) <= {"PermissionError", "OSError", "FileNotFoundError"}, writes
    # its /tmp is its own: the file it wrote, and the way to its folder, nothing of the host's
    parts = Path(cwd).relative_to("/tmp").parts if cwd.startswith("/tmp/") else ()
    assert set(tmp) == {private, *parts[:1]}
    assert not Path("/tmp", private).exists()


def test_bwrap_reports_a_signal_as_a_negative_status() -> None:
    assert bwrap.exit_status(128 + signal.SIGKILL) == -signal.SIGKILL
    assert bwrap.exit_status(128 + signal.SIGXCPU) == -signal.SIGXCPU
    assert bwrap.exit_status(0) == 0 and bwrap.exit_status(3) == 3
    assert bwrap.exit_status(-signal.SIGKILL) == -signal.SIGKILL  # bwrap itself killed


# ---- choosing the backend ----------------------------------------------------------------------


@pytest.fixture
def fresh_probes() -> Iterator[None]:
    """Forget the probes' answers before and after (they are cached per process)."""
    for cached in (bwrap.tools, bwrap.problem, sandbox._auto):
        cached.cache_clear()
    yield
    for cached in (bwrap.tools, bwrap.problem, sandbox._auto):
        cached.cache_clear()


def test_auto_falls_back_to_the_process_sandbox_with_one_warning_of_what_it_lacks(
    fresh_probes: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no bwrap to be found
    with caplog.at_level(logging.WARNING, logger="relayflow.sandbox"):
        assert resolve_backend("auto") == "process"
        assert resolve_backend("auto") == "process"
        assert run("print('ran')\n", "process").stdout == "ran\n"
    [warning] = caplog.records
    message = warning.getMessage()
    assert "bwrap is not installed (Debian: apt-get install bubblewrap)" in message
    for escape in ("filesystem", "Unix sockets", "signals", "daemon"):
        assert escape in message
    with pytest.raises(OSError, match="bwrap cannot run here: bwrap is not installed"):
        resolve_backend("bwrap")


def test_a_bwrap_that_cannot_make_namespaces_is_found_out_by_the_probe(
    fresh_probes: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # what bwrap answers in a container without the privilege to make namespaces
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert bwrap.problem() == "bwrap fails here: bwrap: No permissions to create new namespace"
    with pytest.raises(OSError, match="No permissions to create new namespace"):
        resolve_backend("bwrap")


def test_process_is_chosen_when_asked_even_where_bwrap_works() -> None:
    assert resolve_backend("process") == "process"
    if bwrap.problem() is None:
        assert resolve_backend("auto") == resolve_backend("bwrap") == "bwrap"
