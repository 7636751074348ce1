"""A loopback HTTP server (http.server in a thread) whose answers each test decides, and the
answers of endpoints that quote back the credential they were sent."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int
    body: Any = None
    reason: str | None = None  # the status line's phrase; some servers echo input there
    size: int = 0  # Content-Length of a HEAD answer


@dataclass
class Stub:
    """What the server answers (``respond`` gets the method, path and headers)."""

    url: str
    respond: Callable[[str, str, dict[str, str]], Reply]
    seen: list[dict[str, str]] = field(default_factory=list)


@contextmanager
def stub_server() -> Iterator[Stub]:
    """Serve on a free loopback port until the block ends; answers 500 until told otherwise."""
    holder: list[Stub] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            holder[0].seen.append(headers)
            reply = holder[0].respond(self.command, self.path, headers)
            body = json.dumps(reply.body).encode() if reply.body is not None else b""
            self.send_response(reply.status, reply.reason)
            self.send_header("Content-Type", "application/json")
            # a HEAD answer tells the size of a file that a GET would send
            size = reply.size if self.command == "HEAD" else len(body)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_HEAD = _answer  # noqa: N815 - http.server's naming

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Stub(f"http://127.0.0.1:{server.server_address[1]}", lambda *a: Reply(500)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def bearer(headers: dict[str, str]) -> str:
    """The credential a request carried, as an endpoint that echoes it would show it."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        return base64.b64decode(value).decode()
    return value


def openai_rejects_the_key(method: str, path: str, headers: dict[str, str]) -> Reply:
    """OpenAI's own answer to a wrong key: it quotes the key back."""
    message = f"Incorrect API key provided: {bearer(headers)}. You can find your API key at …"
    return Reply(401, {"error": {"message": message, "type": "invalid_request_error"}})


#: one inference step on an OpenAI-compatible model whose key comes from RF_TEST_OPENAI_KEY;
#: fill in ``name`` and ``base_url``
ECHOED_KEY_WORKFLOW = """
name: {name}
models:
  gpt:
    provider: openai
    model: gpt-test
    base_url: {base_url}
    api_key_env: RF_TEST_OPENAI_KEY
    max_retries: 0
workflow:
  - name: Ask
    type: inference
    model: gpt
    prompt: "Say hello to {{{{ name }}}}"
"""
