"""Run untrusted Python (model-written code and its tests) in a child process under OS limits:
a wall-clock timeout, resource limits, a process group of its own and, where permitted, no network.

What isolates the code is the operating system, not Python: the program runs in a separate
interpreter (``sys.executable -s -S -B -P``: no site-packages, no user site, no script folder on
``sys.path``) with an environment we build from scratch, an empty temporary working directory,
stdin on ``/dev/null``, and these limits set between ``fork`` and ``exec`` (``preexec_fn``):

- a new session and process group (``setsid``), killed as a whole (``killpg``) on timeout and
  after every run, so background children do not survive it;
- ``RLIMIT_AS`` (memory), ``RLIMIT_CPU`` (CPU seconds), ``RLIMIT_FSIZE`` (10 MB per file written,
  stdout and stderr included), ``RLIMIT_NPROC`` (64) and ``RLIMIT_CORE`` (0);
- a new, empty network namespace (``unshare(CLONE_NEWNET)``): no interface is up, so every
  connection fails, loopback included. This needs CAP_SYS_ADMIN (root); without it the program
  runs with the network and ``SandboxResult.network_isolated`` is False.

No Python-level blacklist (removing ``os``, ``open``, ``__import__``…) is attempted: such lists are
always escapable and would only pretend to be security. Limits of this sandbox, by design:

- no filesystem isolation: the program runs as the calling user and can read and write what that
  user can. Run relayflow as an unprivileged user (or in a container) to protect your files;
- ``RLIMIT_NPROC`` counts every process of the user, and the kernel does not enforce it for root;
- ``-I`` (isolated mode) is not used because it ignores ``PYTHONHASHSEED``; ``-s -P`` plus an
  environment that holds only ``PATH`` and ``PYTHONHASHSEED=0`` give the same isolation with
  reproducible hashing (set iteration order);
- a program that starts a session of its own (``setsid``) leaves the process group and survives
  the group kill (still under its CPU limit); only a PID namespace or a cgroup would hold it;
- ``preexec_fn`` is documented as unsafe in threaded programs (a lock held by another thread at
  ``fork``); ours only calls ``setsid``, ``setrlimit`` and a libc function resolved beforehand;
- Linux only for the network namespace; on other POSIX systems the rest applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

#: the most of stdout and of stderr kept on the result (their last bytes)
OUTPUT_LIMIT = 4096
#: the largest file the program may write (stdout and stderr included)
FILE_LIMIT = 10 * 1024 * 1024
#: processes the program's user may have (not enforced by the kernel for root)
PROCESS_LIMIT = 64
#: the only environment the program sees
ENV = {"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"}
PROGRAM = "program.py"

_CLONE_NEWNET = 0x40000000


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """How a program ended. ``passed``: it exited with status 0 before the timeout.

    ``returncode`` is negative when a signal ended it (-9 after a timeout, -24 at the CPU
    limit); ``stdout`` and ``stderr`` hold their last 4 KB; ``seconds`` is the wall time.
    """

    passed: bool
    returncode: int
    timed_out: bool
    stdout: str
    stderr: str
    seconds: float
    network_isolated: bool = True


@dataclass(frozen=True, slots=True)
class _Limits:
    #: (resource, soft limit, hard limit)
    rlimits: tuple[tuple[int, int, int], ...]
    isolate_network: bool


def _clamp(kind: int, soft: int, hard: int) -> tuple[int, int, int]:
    """The limits asked for, but never above the current hard limit (which only a privileged
    process may raise)."""
    _, current = resource.getrlimit(kind)
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    return kind, soft, hard


def _limits(timeout: float, memory_mb: int, cpu_seconds: int | None) -> _Limits:
    cpu = max(1, cpu_seconds if cpu_seconds is not None else math.ceil(timeout) + 1)
    memory = memory_mb * 1024 * 1024
    rlimits = (
        _clamp(resource.RLIMIT_AS, memory, memory),
        # SIGXCPU at the soft limit; SIGKILL one second later if the program ignores it
        _clamp(resource.RLIMIT_CPU, cpu, cpu + 1),
        _clamp(resource.RLIMIT_FSIZE, FILE_LIMIT, FILE_LIMIT),
        _clamp(resource.RLIMIT_NPROC, PROCESS_LIMIT, PROCESS_LIMIT),
        _clamp(resource.RLIMIT_CORE, 0, 0),
    )
    return _Limits(rlimits, network_namespaces())


@functools.lru_cache(maxsize=1)
def _unshare() -> Callable[[int], int] | None:
    """libc's ``unshare``, resolved in the parent (nothing is looked up after ``fork``)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn: Callable[[int], int] = libc.unshare
    except (OSError, AttributeError):
        return None
    return fn


def _isolate_network() -> None:
    unshare = _unshare()
    if unshare is None or unshare(_CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")


@functools.lru_cache(maxsize=1)
def network_namespaces() -> bool:
    """Whether this process may give a child a network namespace of its own (probed once by
    starting one trivial child that does it)."""
    if _unshare() is None:
        return False
    try:
        done = subprocess.run(
            [sys.executable, "-S", "-c", ""],
            preexec_fn=_isolate_network,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=ENV,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _preexec(limits: _Limits) -> Callable[[], None]:
    """What the child does between ``fork`` and ``exec``: only calls resolved beforehand."""
    setrlimit = resource.setrlimit

    def apply() -> None:
        os.setsid()
        if limits.isolate_network:
            _isolate_network()  # raises: never run unisolated while the result claims isolation
        for kind, soft, hard in limits.rlimits:
            setrlimit(kind, (soft, hard))

    return apply


class _Workspace:
    """The program's fresh working directory with its source and output files, removed after."""

    def __init__(self, source: str) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="relayflow-sandbox-")
        self.path = Path(self._dir.name)
        (self.path / PROGRAM).write_text(source, encoding="utf-8")
        self.stdout: IO[bytes] = open(self.path / ".stdout", "w+b")
        self.stderr: IO[bytes] = open(self.path / ".stderr", "w+b")

    def command(self) -> list[str]:
        return [sys.executable, "-s", "-S", "-B", "-P", PROGRAM]

    def close(self) -> None:
        self.stdout.close()
        self.stderr.close()
        self._dir.cleanup()


def _tail(stream: IO[bytes]) -> str:
    stream.flush()
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(0, size - OUTPUT_LIMIT))
    return stream.read(OUTPUT_LIMIT).decode("utf-8", errors="replace")


def _kill_group(pid: int) -> None:
    """Kill what is left of the program's process group (it may have started children)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _result(
    ws: _Workspace, returncode: int, timed_out: bool, seconds: float, limits: _Limits
) -> SandboxResult:
    return SandboxResult(
        passed=returncode == 0 and not timed_out,
        returncode=returncode,
        timed_out=timed_out,
        stdout=_tail(ws.stdout),
        stderr=_tail(ws.stderr),
        seconds=seconds,
        network_isolated=limits.isolate_network,
    )


def run_python(
    source: str, *, timeout: float, memory_mb: int, cpu_seconds: int | None = None
) -> SandboxResult:
    """Run ``source`` as a Python program in the sandbox and wait at most ``timeout`` seconds.

    ``memory_mb`` caps its address space; ``cpu_seconds`` its CPU time (default: the timeout
    rounded up, plus one). Raises OSError only when the child cannot be started at all.
    A thin wrapper over ``run_python_async``; call that one from a running event loop.
    """
    return asyncio.run(
        run_python_async(source, timeout=timeout, memory_mb=memory_mb, cpu_seconds=cpu_seconds)
    )


async def run_python_async(
    source: str, *, timeout: float, memory_mb: int, cpu_seconds: int | None = None
) -> SandboxResult:
    """``run_python`` for the event loop: the child is awaited, no thread is held while it runs.

    If the awaiting task is cancelled, the program's process group is killed before the
    cancellation propagates.
    """
    limits = _limits(timeout, memory_mb, cpu_seconds)
    ws = _Workspace(source)
    try:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *ws.command(),
            cwd=ws.path,
            env=ENV,
            stdin=subprocess.DEVNULL,
            stdout=ws.stdout,
            stderr=ws.stderr,
            preexec_fn=_preexec(limits),
            close_fds=True,
        )
        timed_out = False
        try:
            returncode = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            timed_out = True
            _kill_group(proc.pid)
            returncode = await proc.wait()
        except BaseException:
            _kill_group(proc.pid)
            # shielded: the child must be reaped even though this task is being cancelled
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(proc.wait())
            raise
        seconds = time.perf_counter() - started
        _kill_group(proc.pid)
        return _result(ws, returncode, timed_out, seconds, limits)
    finally:
        ws.close()
