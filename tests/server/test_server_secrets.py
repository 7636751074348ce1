"""A real ``relayflow serve`` whose workflow's model endpoint echoes the API key: the key is not
in the run's API view, its event stream, its review page, the server's log or the store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.helpers import client, make_token, serving, sse_events, wait_for
from tests.stub_http import ECHOED_KEY_WORKFLOW, Stub, openai_rejects_the_key, stub_server

pytest.importorskip("openai", reason="the openai package (extra: openai) is missing")

API_KEY = "sk-test-SECRET123"


@pytest.fixture
def stub() -> Iterator[Stub]:
    with stub_server() as server:
        yield server


def test_the_server_never_shows_a_key_its_model_endpoint_echoes(
    stub: Stub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RF_TEST_OPENAI_KEY", API_KEY)  # the server process inherits it
    stub.respond = openai_rejects_the_key
    workflow = tmp_path / "leaky.yaml"
    workflow.write_text(ECHOED_KEY_WORKFLOW.format(name="leaky", base_url=f"{stub.url}/v1"))
    store = str(tmp_path / "runs.db")
    token = make_token(store, "root", "*=admin")

    with serving(store, tmp_path) as server, client(server, token) as api:
        assert api.post("/v1/workflows", json={"path": str(workflow)}).status_code == 201
        submitted = api.post("/v1/workflows/leaky/runs", json={"input": {"name": "Ada"}})
        assert submitted.status_code == 202
        run_id = submitted.json()["run_id"]
        run = wait_for(
            lambda: api.get(f"/v1/runs/{run_id}").json(), lambda r: r["status"] == "failed"
        )
        with api.stream("GET", f"/v1/runs/{run_id}/events") as stream:
            events = list(sse_events(stream))
        with httpx.Client(base_url=server.url, cookies={"relayflow_token": token}) as web:
            page = web.get(f"/runs/{run_id}")
        log = server.output()

    assert any(API_KEY in h.get("authorization", "") for h in stub.seen)  # it was sent
    assert "Incorrect API key provided: ***" in (run["error"] or ""), run
    assert API_KEY not in str(run)
    assert events and API_KEY not in str(events)
    assert page.status_code == 200 and API_KEY not in page.text
    assert API_KEY not in log
    with sqlite3.connect(store) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                assert API_KEY not in str(row), (table, row)
