"""Helpers of the sandbox tests: running a program on a backend, and watching host processes
(process groups, PID namespaces) through /proc."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from relayflow.sandbox import Isolation, SandboxResult, bwrap, run_python


def require(backend: Isolation) -> Isolation:
    """``backend``, or a skip saying why it cannot run here (bwrap is installed in CI)."""
    if backend == "bwrap" and (reason := bwrap.problem()) is not None:
        pytest.skip(f"bubblewrap cannot run here: {reason}")
    return backend


def run(
    source: str,
    backend: Isolation,
    *,
    timeout: float = 10,
    memory_mb: int = 256,
    **kw: Any,
) -> SandboxResult:
    result = run_python(source, timeout=timeout, memory_mb=memory_mb, backend=backend, **kw)
    assert result.isolation == backend
    return result


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def program_uid(backend: Isolation) -> int:
    """The host uid a sandboxed program runs as."""
    if backend == "bwrap" and os.geteuid() == 0:
        return bwrap.SANDBOX_UID
    return os.getuid()


def _processes(where: Callable[[Path], bool]) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # "pid (comm) state ppid pgrp …": comm may hold spaces, so split after its ')'
            if stat[stat.rindex(")") + 2 :].split()[0] != "Z" and where(entry):
                found.append(int(entry.name))
        except OSError:
            continue  # ended while we looked
    return found


def group_members(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that are not zombies."""

    def in_group(entry: Path) -> bool:
        stat = (entry / "stat").read_text()
        return int(stat[stat.rindex(")") + 2 :].split()[2]) == pgid

    return _processes(in_group)


def pidns_members(namespace: str) -> list[int]:
    """Processes in the PID namespace ``namespace`` (as ``/proc/PID/ns/pid`` reads it)."""
    return _processes(lambda entry: os.readlink(entry / "ns" / "pid") == namespace)


def gone(members: Callable[[], list[int]]) -> bool:
    """Whether ``members()`` is empty, allowing a moment for SIGKILL to reach processes that
    are not the sandbox's own child (which it reaps itself)."""
    deadline = time.monotonic() + 5
    while members() and time.monotonic() < deadline:
        time.sleep(0.05)
    return members() == []
