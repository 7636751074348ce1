"""A per-process write-ahead log beside a SQLite store: the cheap way to make a step durable.

Appending one line to a file is a single ``write`` (a few microseconds) and, like a commit in
SQLite's WAL mode with ``synchronous=NORMAL``, it survives ``kill -9`` of the process because the
bytes are already the operating system's. The store applies the log to SQLite in large
transactions ("checkpoints") and then empties it. Every logged write is an upsert, so replaying
a log that was partly applied before a crash is harmless.

Each process writes its own log and holds an exclusive ``flock`` on it while alive; whoever opens
the store next replays the logs whose writers are gone.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Entry = tuple[str, dict[str, Any]]


class Journal:
    def __init__(self, db_file: Path) -> None:
        self.path = db_file.with_name(f"{db_file.name}.rflog.{os.getpid()}.{secrets.token_hex(3)}")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def append(self, entries: list[Entry]) -> None:
        """Write ``entries`` as one line with one system call."""
        data = (json.dumps(entries, separators=(",", ":")) + "\n").encode()
        written = os.write(self._fd, data)
        if written != len(data):  # a short write to a regular file means the disk is full
            raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes)")

    def clear(self) -> None:
        """Empty the log once everything in it is committed to the database."""
        os.ftruncate(self._fd, 0)

    def close(self) -> None:
        os.close(self._fd)
        self.path.unlink(missing_ok=True)


def orphaned_logs(db_file: Path) -> Iterator[tuple[Path, int, list[Entry]]]:
    """Logs of writers that are gone: ``(path, locked fd, entries)``. The caller applies the
    entries, commits, then calls ``discard(path, fd)``."""
    for path in sorted(db_file.parent.glob(f"{db_file.name}.rflog.*")):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its writer is alive
            os.close(fd)
            continue
        yield path, fd, list(_read_entries(path))


def discard(path: Path, fd: int) -> None:
    path.unlink(missing_ok=True)
    os.close(fd)


def _read_entries(path: Path) -> Iterator[Entry]:
    with open(path, "rb") as log:
        for line in log:
            try:
                group = json.loads(line)
            except ValueError:  # a line cut short by a crash: it was never acknowledged
                break
            yield from ((name, row) for name, row in group)
