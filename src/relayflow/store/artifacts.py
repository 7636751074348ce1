"""Where the version registry keeps its files: the artifacts folder beside the run store, and
atomic file writes (a reader sees the old file or the new one)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from relayflow.store.database import sqlite_folder

if TYPE_CHECKING:
    from relayflow.store.database import Engine

ARTIFACTS_ENV = "RELAYFLOW_ARTIFACTS"


def default_artifacts(engine: Engine) -> Path:
    """``$RELAYFLOW_ARTIFACTS``, else ``models/`` beside a SQLite store file, else
    ``.relayflow/models`` in the current directory (for a database server)."""
    configured = os.environ.get(ARTIFACTS_ENV)
    if configured:
        return Path(configured).expanduser()
    folder = sqlite_folder(engine)
    if folder is not None:
        return folder / "models"
    return Path.cwd() / ".relayflow" / "models"


def write_atomically(path: Path, content: bytes) -> None:
    """Write ``path`` so that a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
