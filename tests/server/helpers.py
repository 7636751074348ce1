"""Tiny workflows and tokens for the server tests, and a real uvicorn on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from relayflow.govern.access import Grant, TokenStore
from relayflow.store.sql_store import SqlStore

#: prep adds ``n``; secret (a sensitive agent) adds ``ssn``; check parks when ``review`` is set
SCRIPTS = {
    "prep.py": "def transform(record):\n    return {**record, 'n': record.get('n', 0) + 1}\n",
    "secret.py": (
        "def transform(record):\n    return {**record, 'ssn': '123-45-' + str(record['n'])}\n"
    ),
    "slow.py": (
        "import time\n"
        "def transform(record):\n"
        "    time.sleep(record.get('sleep', 0))\n"
        "    return {**record, 'slept': True}\n"
    ),
}

REVIEWED = """\
name: reviewed
access:
  sensitive: [secret]
workflow:
  - name: prep
    type: transform
    script: prep.py
  - name: secret
    type: transform
    script: secret.py
  - name: check
    type: human_review
    when: "review"
  - name: after
    type: transform
    script: prep.py
"""

SLOW = """\
name: slow
workflow:
  - name: nap
    type: transform
    script: slow.py
    run_in: thread
  - name: prep
    type: transform
    script: prep.py
"""


def write_workflows(folder: Path) -> dict[str, Path]:
    for name, source in SCRIPTS.items():
        (folder / name).write_text(source)
    (folder / "reviewed.yaml").write_text(REVIEWED)
    (folder / "slow.yaml").write_text(SLOW)
    return {"reviewed": folder / "reviewed.yaml", "slow": folder / "slow.yaml"}


def make_token(store: str, name: str, *grants: str) -> str:
    from relayflow.govern.access import parse_grant

    writer = SqlStore(store)
    try:
        secret, _ = TokenStore(writer.engine).create(name, [parse_grant(g) for g in grants])
    finally:
        writer.close()
    return secret


def grant(workflow: str, role: str) -> Grant:
    return Grant(workflow, role)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``relayflow serve`` in a child process on a free loopback port."""

    def __init__(
        self,
        store: str,
        cwd: Path,
        workers: int = 4,
        max_body: int = 1 << 20,
        roots: list[Path] | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        """``roots``: the ``--workflow-root`` folders (default: ``cwd``; ``[]``: none)."""
        self.port = free_port()
        folders = [cwd] if roots is None else roots
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (cwd / f"server-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "relayflow",
                "serve",
                "--store",
                store,
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--max-body",
                str(max_body),
                "--log-level",
                "warning",
                *(arg for folder in folders for arg in ("--workflow-root", str(folder))),
                *extra,
            ],
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.output()}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"the server did not start: {self.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: nothing gets to clean up."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)
        self.log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self.log.close()


@contextmanager
def serving(store: str, cwd: Path, **options: Any) -> Iterator[Server]:
    server = Server(store, cwd, **options)
    try:
        yield server
    finally:
        server.stop()


def client(server: Server, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def wait_for(get: Any, ok: Any, timeout: float = 60) -> Any:
    """Poll ``get()`` until ``ok(value)``; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    value = get()
    while not ok(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting; last: {json.dumps(value, default=str)[:2000]}")
        time.sleep(0.05)
        value = get()
    return value


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(event, data)`` of a text/event-stream response, as they arrive."""
    name, data = "message", list[str]()
    for line in response.iter_lines():
        if line == "":
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
