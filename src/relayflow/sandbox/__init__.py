"""Run untrusted Python (model-written code and its tests) in a child process, isolated by the
operating system, never by Python: backend ``bwrap`` where bubblewrap works, else ``process``.

Both backends run the program in a separate interpreter (``-s -S -B -P``: no site-packages, no
user site, no script folder on ``sys.path``) with an environment built from scratch (``PATH``,
``PYTHONHASHSEED=0``; bwrap adds ``PWD``), stdin on ``/dev/null``, in a fresh working folder
that is removed after, and under the same limits: a wall-clock timeout, ``RLIMIT_AS``
(memory), ``RLIMIT_CPU``, ``RLIMIT_FSIZE`` (10 MB per file, stdout and stderr included),
``RLIMIT_NPROC`` (64), ``RLIMIT_CORE`` (0), and a session and process group of its own killed
as a whole on timeout, on cancellation and after every run. stdout and stderr keep their last
4 KB, in files outside the program's folder.

``bwrap`` (bubblewrap 0.8 or later, Debian package ``bubblewrap``) contains what ``process``
does not:

- new PID, network, IPC, UTS and cgroup namespaces, and a new user namespace unless we are
  root. The program is PID 2 under bwrap's init: when it exits (or is killed) the kernel kills
  everything left in the namespace, daemons that started a session of their own included; and
  it cannot see or signal any process outside. The network namespace has only its own
  loopback: no connection reaches the host's (abstract Unix sockets included);
- a new mount namespace whose root is an empty tmpfs with, read-only, ``/usr``, the
  ``/bin``/``/lib*`` links, the Python installation's folders, ``/etc/ld.so.cache`` and
  ``/etc/localtime``; a private ``/tmp`` and ``/dev/shm`` (tmpfs, 64 MB each), a new ``/proc``,
  a minimal ``/dev``; and, writable, only the program's own folder. Nothing else of the host is
  there: not ``/etc/shadow`` nor the rest of ``/etc``, not ``/home``, ``/root``, the host's
  ``/tmp`` or the project's files, and no Unix socket on the host's filesystem;
- the program runs as uid/gid 65534 (nobody) with no capabilities (all five sets empty) and
  ``no_new_privs``. As root there is no user namespace: bwrap's would map the program onto host
  root, whom ``RLIMIT_NPROC`` does not bind, so ``setpriv`` drops it to the host's nobody and
  the process limit holds (it counts every process of nobody on the host). As another user, a
  user namespace maps nobody onto that user and forbids the program nested ones.

Limits of ``bwrap``: the program shares the kernel (a kernel bug is an escape); as root it may
still create user namespaces of its own where the kernel lets unprivileged users do so; bwrap
reports a death by signal N as exit status 128 + N, so a program exiting 129–192 is read as
killed; files it writes in its folder count only against ``RLIMIT_FSIZE`` each.

``process`` (the fallback, warned about once) contains none of that: the program runs as the
calling user, reads and writes what that user can, connects to Unix sockets on the filesystem,
signals that user's other processes, and a daemon that calls ``setsid`` leaves the process
group and outlives the run (still under its CPU limit). The network is cut (an empty namespace
by ``unshare(CLONE_NEWNET)``) only where that is permitted (root): ``network_isolated`` says
so. ``RLIMIT_NPROC`` is not enforced for root.

No Python-level blacklist (removing ``os``, ``open``…) is attempted in either: such lists are
always escapable. ``-I`` is not used because it ignores ``PYTHONHASHSEED``; ``-s -P`` and the
environment give the same isolation with reproducible hashing. ``preexec_fn`` only calls
``setsid``, ``setrlimit`` and a libc function resolved beforehand.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Literal

from relayflow.sandbox import bwrap
from relayflow.sandbox.child import (
    ENV,
    FILE_LIMIT,
    OUTPUT_LIMIT,
    PROCESS_LIMIT,
    PROGRAM,
    PYTHON_FLAGS,
    Workspace,
    kill_group,
    limits,
    network_namespaces,
    preexec,
    tail,
)

__all__ = [
    "ENV",
    "FILE_LIMIT",
    "OUTPUT_LIMIT",
    "PROCESS_LIMIT",
    "PROGRAM",
    "Backend",
    "Isolation",
    "SandboxResult",
    "network_namespaces",
    "resolve_backend",
    "run_python",
    "run_python_async",
]

#: what a caller asks for: ``auto`` is bwrap where it works, else the process sandbox
Backend = Literal["auto", "bwrap", "process"]
#: what ran
Isolation = Literal["bwrap", "process"]

log = logging.getLogger("relayflow.sandbox")

FALLBACK_WARNING = (
    "bwrap cannot run here (%s): generated code runs in the process sandbox, which limits its "
    "time, CPU, memory, file sizes and (not as root) processes, and cuts the network only as "
    "root, but does NOT contain the filesystem (it reads and writes what this user can), Unix "
    "sockets on the filesystem, signals to this user's other processes, or a daemon that starts "
    "a session of its own — install bubblewrap (apt-get install bubblewrap) to contain them"
)


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """How a program ended. ``passed``: it exited with status 0 before the timeout.

    ``returncode`` is negative when a signal ended it (-9 after a timeout, -24 at the CPU
    limit); ``stdout`` and ``stderr`` hold their last 4 KB; ``seconds`` is the wall time;
    ``isolation`` is the backend that ran it.
    """

    passed: bool
    returncode: int
    timed_out: bool
    stdout: str
    stderr: str
    seconds: float
    isolation: Isolation
    network_isolated: bool = True


def resolve_backend(backend: Backend) -> Isolation:
    """The backend that runs programs for ``backend``. The first call may start a child (the
    probes), so call it off the event loop before the first run.

    ``auto`` falls back to ``process`` with one warning in the log saying what that does not
    contain; ``bwrap`` where it cannot run raises OSError with the reason.
    """
    if backend == "process":
        network_namespaces()
        return "process"
    if backend == "bwrap":
        reason = bwrap.problem()
        if reason is not None:
            raise OSError(
                f"bwrap cannot run here: {reason} — install bubblewrap "
                "(apt-get install bubblewrap) or choose sandbox: auto or process"
            )
        return "bwrap"
    return _auto()


@functools.lru_cache(maxsize=1)
def _auto() -> Isolation:
    reason = bwrap.problem()
    if reason is None:
        return "bwrap"
    log.warning(FALLBACK_WARNING, reason)
    network_namespaces()
    return "process"


def run_python(
    source: str,
    *,
    timeout: float,
    memory_mb: int,
    cpu_seconds: int | None = None,
    backend: Backend = "auto",
) -> SandboxResult:
    """Run ``source`` as a Python program in the sandbox and wait at most ``timeout`` seconds.

    ``memory_mb`` caps its address space; ``cpu_seconds`` its CPU time (default: the timeout
    rounded up, plus one). Raises OSError only when the child cannot be started at all (or
    ``backend="bwrap"`` cannot run here). A thin wrapper over ``run_python_async``; call that
    one from a running event loop.
    """
    return asyncio.run(
        run_python_async(
            source, timeout=timeout, memory_mb=memory_mb, cpu_seconds=cpu_seconds, backend=backend
        )
    )


async def run_python_async(
    source: str,
    *,
    timeout: float,  # noqa: ASYNC109 - the child's time limit (killed past it), not a wait of ours
    memory_mb: int,
    cpu_seconds: int | None = None,
    backend: Backend = "auto",
) -> SandboxResult:
    """``run_python`` for the event loop: the child is awaited, no thread is held while it runs.

    If the awaiting task is cancelled, the program is killed before the cancellation
    propagates.
    """
    isolation = resolve_backend(backend)
    contained = isolation == "bwrap"
    # bwrap cuts the network itself; the process backend asks for a namespace where it may
    run_limits = limits(
        timeout, memory_mb, cpu_seconds, isolate_network=not contained and network_namespaces()
    )
    ws = Workspace(source, owner=bwrap.SANDBOX_UID if contained and bwrap.as_root() else None)
    if contained:
        command = bwrap.command(*bwrap.tools(), ws.path, ENV)
    else:
        command = [sys.executable, *PYTHON_FLAGS, PROGRAM]
    try:
        started = time.perf_counter()
        # bwrap's own setup and its init stay in this process group; the program makes a
        # session of its own, and dies with the PID namespace when the group is killed
        proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=ws.path,
            env=ENV,
            stdin=subprocess.DEVNULL,
            stdout=ws.stdout,
            stderr=ws.stderr,
            preexec_fn=preexec(run_limits),
            close_fds=True,
        )
        timed_out = False
        try:
            returncode = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            timed_out = True
            kill_group(proc.pid)
            returncode = await proc.wait()
        except BaseException:
            kill_group(proc.pid)
            # shielded: the child must be reaped even though this task is being cancelled
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(proc.wait())
            raise
        seconds = time.perf_counter() - started
        kill_group(proc.pid)
        if contained:
            returncode = bwrap.exit_status(returncode)
        return SandboxResult(
            passed=returncode == 0 and not timed_out,
            returncode=returncode,
            timed_out=timed_out,
            stdout=tail(ws.stdout),
            stderr=tail(ws.stderr),
            seconds=seconds,
            isolation=isolation,
            network_isolated=contained or run_limits.isolate_network,
        )
    finally:
        ws.close()
