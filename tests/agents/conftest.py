"""Fixtures for agent tests: a build context, a real S3 (moto server) and a real HTTP server."""

from __future__ import annotations

import functools
import http.server
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relayflow.agents.base import BuildContext

RESOURCES = Path(__file__).resolve().parent.parent / "resources"


def _no_provider(alias: str) -> Any:
    raise AssertionError(f"this agent must not ask for a model provider (asked for {alias!r})")


@pytest.fixture
def ctx(tmp_path: Path) -> BuildContext:
    return BuildContext(base_dir=tmp_path, workflow_file=None, get_provider=_no_provider)


@pytest.fixture
def resources_ctx() -> BuildContext:
    """A context whose workflow folder is tests/resources/retrieval."""
    return BuildContext(
        base_dir=RESOURCES / "retrieval", workflow_file=None, get_provider=_no_provider
    )


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A real S3 API on loopback (moto's threaded server), for the module's tests."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its buckets per process, not per server: start from an empty S3
    reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).close()
    yield endpoint
    server.stop()


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, so that nothing reaches for a real AWS account."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on loopback: (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield root, f"http://{host!s}:{port}"
    server.shutdown()
    server.server_close()
    thread.join()
