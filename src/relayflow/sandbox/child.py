"""How a sandboxed child starts, whatever the backend: its workspace, its resource limits, its
own session, and (process backend, as root) an empty network namespace."""

from __future__ import annotations

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
#: the interpreter's flags: no site-packages, no user site, no .pyc, no script folder on sys.path
PYTHON_FLAGS = ("-s", "-S", "-B", "-P")

_CLONE_NEWNET = 0x40000000


@dataclass(frozen=True, slots=True)
class Limits:
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


def limits(
    timeout: float, memory_mb: int, cpu_seconds: int | None, *, isolate_network: bool
) -> Limits:
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
    return Limits(rlimits, isolate_network)


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


def preexec(limits: Limits) -> Callable[[], None]:
    """What the child does between ``fork`` and ``exec``: only calls resolved beforehand."""
    setrlimit = resource.setrlimit

    def apply() -> None:
        os.setsid()
        if limits.isolate_network:
            _isolate_network()  # raises: never run unisolated while the result claims isolation
        for kind, soft, hard in limits.rlimits:
            setrlimit(kind, (soft, hard))

    return apply


class Workspace:
    """The program's fresh working directory with its source, removed after; its stdout and
    stderr go to anonymous files outside it (the program cannot see or rewrite them).

    ``owner``: the uid (and gid) the folder is given to, for a program that runs as another
    user than ours (bwrap as root runs it as nobody)."""

    def __init__(self, source: str, owner: int | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="relayflow-sandbox-")
        self.path = Path(self._dir.name).resolve()
        program = self.path / PROGRAM
        program.write_text(source, encoding="utf-8")
        if owner is not None:
            os.chown(self.path, owner, owner)
            os.chown(program, owner, owner)
        self.stdout: IO[bytes] = tempfile.TemporaryFile()
        self.stderr: IO[bytes] = tempfile.TemporaryFile()

    def close(self) -> None:
        self.stdout.close()
        self.stderr.close()
        self._dir.cleanup()


def tail(stream: IO[bytes]) -> str:
    stream.flush()
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(0, size - OUTPUT_LIMIT))
    return stream.read(OUTPUT_LIMIT).decode("utf-8", errors="replace")


def kill_group(pid: int) -> None:
    """Kill what is left of the child's process group (it may have started children)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
