"""Write small workflows of real transform scripts into a folder for engine tests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import relayflow


def write_workflow(folder: Path, yaml_text: str, scripts: dict[str, str]) -> relayflow.Workflow:
    for name, source in scripts.items():
        (folder / name).write_text(source)
    path = folder / "workflow.yaml"
    path.write_text(yaml_text)
    return relayflow.load_workflow(path)


INCREMENT = """
def transform(record):
    return {**record, "n": record.get("n", 0) + 1}
"""


GOOD = {
    "id": "x",
    "object": "chat.completion",
    "created": 0,
    "model": "fake",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "fine"}}
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


class Endpoint:
    """Answers each POST with the next scripted behaviour: an int status, 'garbage', 'hang'."""

    def __init__(self) -> None:
        self.script: list[object] = []
        self.calls = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("content-length", 0)))
                endpoint.calls += 1
                what = endpoint.script.pop(0) if endpoint.script else 200
                if what == "hang":
                    time.sleep(1.5)
                    what = 200
                if what == "garbage":
                    body, status = b"{not json", 200
                elif what == 200:
                    body, status = json.dumps(GOOD).encode(), 200
                else:
                    body, status = b'{"error": {"message": "boom"}}', int(str(what))
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
