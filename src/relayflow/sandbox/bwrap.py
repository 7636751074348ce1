"""The bubblewrap backend: the ``bwrap`` command line that runs a program in new namespaces
over a read-only, minimal root, and the probe that says once whether it works here."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from relayflow.sandbox.child import ENV, PROGRAM, PYTHON_FLAGS, Workspace

#: the unprivileged user the program runs as (nobody, the kernel's overflow uid)
SANDBOX_UID = 65534
#: the size of each private tmpfs (/tmp, /dev/shm); they live in memory
TMPFS_BYTES = 64 * 1024 * 1024
#: the top-level system folders the interpreter and coreutils need (symlinks on a merged /usr)
_SYSTEM = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: the only files of the host's /etc in the sandbox: the loader's cache and the time zone
_ETC = ("/etc/ld.so.cache", "/etc/localtime")
_SEARCH = "/usr/bin:/bin:/usr/sbin:/sbin"


def as_root() -> bool:
    return os.geteuid() == 0


def interpreter() -> str:
    """The real interpreter behind ``sys.executable`` (a venv's python is a link to it, and the
    venv itself is not in the sandbox: ``-S`` would not read it anyway)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _python_roots() -> list[str]:
    """The folders of the Python installation to bind: its prefixes (stdlib, lib-dynload,
    libpython) and the interpreter's own folder, unless ``/usr`` already holds them."""
    wanted = [sys.base_prefix, sys.base_exec_prefix, os.path.dirname(interpreter())]
    roots: list[str] = []
    for path in sorted({os.path.realpath(p) for p in wanted}, key=len):
        if not any(_under(path, r) for r in ["/usr", *roots]):
            roots.append(path)
    return roots


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class _Args:
    """bwrap's arguments, with each folder on the way to a mount point made once, 0755 (bwrap
    would make them 0700, which the unprivileged program could not cross)."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self._made = {"/"}

    def add(self, *args: str) -> None:
        self.args.extend(args)

    def mount(self, option: str, dest: str, *before: str, source: str | None = None) -> None:
        for parent in reversed(Path(dest).parents):
            if str(parent) not in self._made:
                self.add("--perms", "0755", "--dir", str(parent))
                self._made.add(str(parent))
        self.add(*before, option, *((source,) if source is not None else ()), dest)
        self._made.add(dest)


def _mounts(workdir: str) -> list[str]:
    a = _Args()
    a.mount("--ro-bind", "/usr", source="/usr")
    for top in _SYSTEM:
        if os.path.islink(top):
            a.add("--symlink", os.readlink(top), top)
        elif os.path.isdir(top):
            a.mount("--ro-bind", top, source=top)
    for root in _python_roots():
        a.mount("--ro-bind", root, source=root)
    for path in _ETC:
        if os.path.exists(path):
            a.mount("--ro-bind", path, source=path)
    size = ("--size", str(TMPFS_BYTES))
    a.mount("--tmpfs", "/tmp", "--perms", "1777", *size)  # noqa: S108 - a fresh tmpfs inside the sandbox, not the host's /tmp
    a.mount("--proc", "/proc")
    a.mount("--dev", "/dev")  # null, zero, full, random, urandom, tty, pts: no host device
    a.mount("--tmpfs", "/dev/shm", "--perms", "1777", *size)  # noqa: S108 - a fresh tmpfs inside the sandbox, not the host's /dev/shm
    # the only writable host folder: the program's own, at its host path (under the new /tmp)
    a.mount("--bind", workdir, source=workdir)
    return a.args


def _namespaces() -> list[str]:
    if as_root():
        # No user namespace as root: bwrap's would map the program's uid onto host root, for
        # whom the kernel enforces no RLIMIT_NPROC (a fork bomb would not stop). setpriv drops
        # to nobody instead, so the program is an unprivileged host user without capabilities.
        # The capabilities kept until then: setpriv's (uid, gid, bounding set) and entering the
        # program's folder (nobody's, 0700) for --chdir; setreuid clears them all.
        keep = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_DAC_READ_SEARCH")
        return [
            *("--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"),
            *("--unshare-cgroup-try", "--cap-drop", "ALL"),
            *(arg for cap in keep for arg in ("--cap-add", cap)),
        ]
    uid = str(SANDBOX_UID)
    return [
        *("--unshare-all", "--unshare-user", "--disable-userns"),
        *("--uid", uid, "--gid", uid, "--cap-drop", "ALL"),
    ]


def _drop_to_nobody(setpriv: str) -> list[str]:
    uid = str(SANDBOX_UID)
    return [
        *(setpriv, "--reuid", uid, "--regid", uid, "--clear-groups"),
        *("--inh-caps=-all", "--bounding-set=-all", "--"),
    ]


def command(bwrap: str, setpriv: str | None, workdir: Path, env: Mapping[str, str]) -> list[str]:
    """The command that runs ``workdir/program.py`` under bwrap with ``env`` as its whole
    environment. ``setpriv`` is needed as root (see ``_namespaces``)."""
    folder = str(workdir)
    args = [bwrap, *_namespaces(), "--die-with-parent", "--new-session"]
    args += ["--hostname", "relayflow-sandbox", *_mounts(folder), "--chdir", folder]
    args += ["--clearenv", *_setenv(env.items()), "--"]
    if as_root():
        if setpriv is None:
            raise OSError("setpriv (util-linux) is needed to run bwrap's program as nobody")
        args += _drop_to_nobody(setpriv)
    return [*args, interpreter(), *PYTHON_FLAGS, PROGRAM]


def _setenv(items: Iterable[tuple[str, str]]) -> list[str]:
    return [arg for key, value in items for arg in ("--setenv", key, value)]


def exit_status(returncode: int) -> int:
    """The program's status as subprocess reports it: bwrap exits with 128 + N when a signal N
    ended the program, which becomes -N (a program that itself exits with 129–192 reads the
    same, a limit of this backend)."""
    signum = returncode - 128
    if 0 < signum < signal.NSIG:
        return -signum
    return returncode


@functools.lru_cache(maxsize=1)
def tools() -> tuple[str, str | None]:
    """The paths of bwrap and (as root) setpriv; OSError saying what is missing."""
    if not sys.platform.startswith("linux"):
        raise OSError("bubblewrap needs Linux namespaces")
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise OSError("bwrap is not installed (Debian: apt-get install bubblewrap)")
    setpriv = shutil.which("setpriv", path=_SEARCH)
    if as_root() and setpriv is None:
        raise OSError("setpriv (util-linux) is not installed; as root it drops to nobody")
    return bwrap, setpriv


@functools.lru_cache(maxsize=1)
def problem() -> str | None:
    """Why bwrap cannot run programs here, or None when it can: probed once per process by
    running an empty program exactly as a real one runs (a container without the privilege to
    make namespaces fails here)."""
    try:
        bwrap, setpriv = tools()
        ws = Workspace("", owner=SANDBOX_UID if as_root() else None)
    except OSError as exc:
        return str(exc)
    try:
        done = subprocess.run(  # noqa: S603 - our own bwrap argv, no shell
            command(bwrap, setpriv, ws.path, ENV),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=ENV,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap does not start: {exc}"
    finally:
        ws.close()
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        return f"bwrap fails here: {lines[-1] if lines else f'exit status {done.returncode}'}"
    return None
