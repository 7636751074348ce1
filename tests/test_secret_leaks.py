"""Issue 9.12 as written: an endpoint that echoes the credential it was sent must not get it
stored, sent on the event stream, printed or logged. Real servers on loopback (http.server in
a thread, uvicorn for a served agent), the real CLI, and the SQLite file read with sqlite3."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from relayflow.cli import app
from tests.stub_http import (
    ECHOED_KEY_WORKFLOW,
    Reply,
    Stub,
    bearer,
    openai_rejects_the_key,
    stub_server,
)

pytest.importorskip("openai", reason="the openai package (extra: openai) is missing")

API_KEY = "sk-test-SECRET123"
SERVICE_TOKEN = "svc-token-SECRET456"
STORAGE_TOKEN = "storage-token-SECRET789"
PG_PASSWORD = "pg-pass-SECRET000"


@pytest.fixture
def stub() -> Iterator[Stub]:
    with stub_server() as server:
        yield server


# ---- where a secret could end up ----------------------------------------------------------


class Project:
    """A project folder (the current directory), `relayflow` run in it, and its store."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.store = folder / "runs.db"
        self._runner = CliRunner()

    def write(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(text)
        return path

    def cli(self, *args: object) -> Result:
        argv = [str(a) for a in args]
        return self._runner.invoke(app, argv, env={"COLUMNS": "200"})

    def run_ids(self) -> list[str]:
        with sqlite3.connect(self.store) as db:
            return [row[0] for row in db.execute("SELECT run_id FROM runs")]

    def stored_errors(self) -> list[str]:
        with sqlite3.connect(self.store) as db:
            runs = [r[0] for r in db.execute("SELECT error FROM runs") if r[0]]
            steps = [r[0] for r in db.execute("SELECT error FROM steps") if r[0]]
        return runs + steps

    def assert_store_clean(self, secret: str) -> None:
        """Every text value of every table of the SQLite file, and every file the store
        wrote beside it (WAL, journal), is free of ``secret``."""
        with sqlite3.connect(self.store) as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            assert "runs" in tables and "steps" in tables
            for table in tables:
                for row in db.execute(f'SELECT * FROM "{table}"'):
                    for value in row:
                        if isinstance(value, bytes):
                            value = value.decode("utf-8", "replace")
                        assert secret not in str(value), f"{table}: {row}"
        for path in self.folder.rglob("*"):
            if path.is_file() and path.suffix not in (".yaml", ".py"):
                assert secret.encode() not in path.read_bytes(), path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RELAYFLOW_STORE", raising=False)
    monkeypatch.delenv("RELAYFLOW_DEBUG", raising=False)
    return Project(tmp_path)


def events_of(path: Path, data: dict[str, Any]) -> tuple[Any, list[Any]]:
    """Run ``data`` through the workflow at ``path`` with no store; the result and every event
    a consumer saw."""
    from relayflow.engine.runner import Runner
    from relayflow.providers.registry import release_clients
    from relayflow.spec.loader import load_spec

    seen: list[Any] = []

    class Recorder:
        def handle(self, event: Any) -> None:
            seen.append(event)

    async def go() -> Any:
        try:
            async with Runner(load_spec(path), consumers=[Recorder()]) as runner:
                return await runner.run(data)
        finally:
            await release_clients()

    return asyncio.run(go()), seen


def assert_nowhere(secret: str, project: Project, caplog: pytest.LogCaptureFixture) -> None:
    """The end of each scenario: the store, and every log record, are free of ``secret``."""
    project.assert_store_clean(secret)
    assert secret not in caplog.text


# ---- a model provider that echoes its API key ---------------------------------------------

MODEL_WORKFLOW = """
name: leaky
models:
  gpt:
    provider: openai
    model: gpt-test
    base_url: {base_url}
    max_retries: 0
{key_line}
workflow:
  - name: Ask
    type: inference
    model: gpt
    prompt: "Say hello to {{{{ name }}}}"
"""


@pytest.mark.parametrize("given", ["env", "literal"])
def test_an_api_key_the_provider_echoes_is_nowhere(
    given: str,
    stub: Stub,
    project: Project,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub.respond = openai_rejects_the_key
    if given == "env":  # api_key_env: the key is sent as a bearer token
        monkeypatch.setenv("RF_TEST_OPENAI_KEY", API_KEY)
        base_url, key_line = f"{stub.url}/v1", "    api_key_env: RF_TEST_OPENAI_KEY"
    else:  # written in the file, in the endpoint's URL: sent as basic auth, shown in `where`
        base_url, key_line = f"http://relayflow:{API_KEY}@{stub.url[7:]}/v1", ""
    path = project.write("wf.yaml", MODEL_WORKFLOW.format(base_url=base_url, key_line=key_line))
    caplog.set_level(logging.DEBUG)

    ran = project.cli("run", path, "--input", '{"name": "Ada"}', "--store", project.store)

    assert ran.exit_code == 1, ran.output
    assert "answered HTTP 401" in ran.output  # the error itself is shown ...
    assert API_KEY not in ran.output  # ... without the key
    assert any(API_KEY in bearer(h) for h in stub.seen)  # the endpoint did get it
    [run_id] = project.run_ids()
    errors = project.stored_errors()
    shown_key = "***" if given == "env" else "relayflow:***"  # the stub decodes basic auth
    assert errors and all(f"Incorrect API key provided: {shown_key}" in e for e in errors)
    shown = project.cli("runs", "show", run_id, "--store", project.store)
    assert shown.exit_code == 0 and "error: " in shown.output
    assert API_KEY not in shown.output
    as_json = project.cli("run", path, "--input", "{}", "--json", "--store", project.store)
    assert '"status": "failed"' in as_json.output and API_KEY not in as_json.output

    result, events = events_of(path, {"name": "Ada"})
    assert result.status == "failed" and "HTTP 401" in (result.error or "")
    assert API_KEY not in repr(result) and API_KEY not in repr(events)
    assert any(type(e).__name__ == "StepFailed" for e in events)
    assert_nowhere(API_KEY, project, caplog)


# ---- a service agent whose endpoint echoes its bearer token ------------------------------

SERVICE_WORKFLOW = """
name: caller
workflow:
  - name: Score
    type: service
    url: {url}
    retries: 0
{auth}
"""

AUTH = {
    "header": '    headers:\n      Authorization: "Bearer ${RF_TEST_SERVICE_TOKEN}"',
    "headers_env": "    headers_env:\n      X-Api-Key: RF_TEST_SERVICE_TOKEN",
}


def token_of(headers: dict[str, str]) -> str:
    return bearer(headers) or headers.get("x-api-key", "")


@pytest.mark.parametrize("auth", sorted(AUTH))
def test_a_token_a_service_echoes_in_its_error_is_nowhere(
    auth: str,
    stub: Stub,
    project: Project,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("RF_TEST_SERVICE_TOKEN", SERVICE_TOKEN)
    stub.respond = lambda m, p, h: Reply(401, {"detail": f"token {token_of(h)} is not valid"})
    text = SERVICE_WORKFLOW.format(url=f"{stub.url}/score", auth=AUTH[auth])
    path = project.write("wf.yaml", text)
    caplog.set_level(logging.DEBUG)

    ran = project.cli("run", path, "--input", '{"n": 1}', "--store", project.store)

    assert ran.exit_code == 1 and "answered HTTP 401: token *** is not valid" in ran.output
    assert SERVICE_TOKEN not in ran.output
    assert stub.seen and token_of(stub.seen[0]) == SERVICE_TOKEN
    [run_id] = project.run_ids()
    shown = project.cli("runs", "show", run_id, "--store", project.store)
    assert "token *** is not valid" in shown.output and SERVICE_TOKEN not in shown.output
    result, events = events_of(path, {"n": 1})
    assert result.status == "failed" and SERVICE_TOKEN not in repr(events)
    assert_nowhere(SERVICE_TOKEN, project, caplog)


def test_a_token_a_service_echoes_in_its_answer_is_not_stored(
    stub: Stub, project: Project, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An echo API (httpbin's /anything) answers 200 with the headers it got: the answer is
    the step's output, which is stored and handed on."""
    monkeypatch.setenv("RF_TEST_SERVICE_TOKEN", SERVICE_TOKEN)
    stub.respond = lambda m, p, h: Reply(200, {"headers": {"Authorization": h["authorization"]}})
    path = project.write(
        "wf.yaml", SERVICE_WORKFLOW.format(url=f"{stub.url}/anything", auth=AUTH["header"])
    )

    ran = project.cli("run", path, "--input", '{"n": 1}', "--store", project.store)

    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["output"] == {"headers": {"Authorization": "***"}}
    result, events = events_of(path, {"n": 1})
    assert result.status == "succeeded" and SERVICE_TOKEN not in repr((result, events))
    assert_nowhere(SERVICE_TOKEN, project, caplog)


# ---- a storage_options credential in an fsspec error --------------------------------------

SOURCE_WORKFLOW = """
name: reader
workflow:
  - name: Read
    type: retrieval
    source: {source}
    storage_options:
      headers: {{Authorization: "Bearer {token}"}}
{more}
"""

LOOKUP = """  - name: Finish
    type: retrieval
    source: "{url}/kb/{{{{ id }}}}.json"
    storage_options:
      headers: {{Authorization: "Bearer {token}"}}
"""


def refuse_in_the_status_line(method: str, path: str, headers: dict[str, str]) -> Reply:
    """A file server that lets HEAD through, then refuses the read, quoting the token in its
    status line (aiohttp puts that phrase into the error fsspec raises)."""
    if method == "HEAD":
        return Reply(200, size=64)
    return Reply(403, {"detail": "no"}, reason=f"token {bearer(headers)} refused")


def test_a_storage_options_secret_in_a_batch_sources_error_is_not_printed(
    stub: Stub, project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp (extra: http)")
    stub.respond = refuse_in_the_status_line
    path = project.write(
        "wf.yaml",
        SOURCE_WORKFLOW.format(source=f"{stub.url}/data.jsonl", token=STORAGE_TOKEN, more=""),
    )
    caplog.set_level(logging.DEBUG)

    ran = project.cli("run", path, "--store", project.store)

    assert ran.exit_code == 1
    assert "ClientResponseError: 403, message='token ***" in ran.output, ran.output
    assert STORAGE_TOKEN not in ran.output
    assert stub.seen and bearer(stub.seen[-1]) == STORAGE_TOKEN
    assert_nowhere(STORAGE_TOKEN, project, caplog)


def test_a_storage_options_secret_in_a_lookups_error_is_not_stored(
    stub: Stub, project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp (extra: http)")
    (project.folder / "items.jsonl").write_text('{"id": "a1"}\n')
    stub.respond = refuse_in_the_status_line
    more = LOOKUP.format(url=stub.url, token=STORAGE_TOKEN)
    path = project.write(
        "wf.yaml", SOURCE_WORKFLOW.format(source="items.jsonl", token="unused-token-1", more=more)
    )
    caplog.set_level(logging.DEBUG)

    ran = project.cli("run", path, "--store", project.store)

    assert ran.exit_code == 1 and STORAGE_TOKEN not in ran.output
    errors = project.stored_errors()
    assert errors and all("token *** refused" in e for e in errors), errors
    [run_id] = project.run_ids()
    shown = project.cli("runs", "show", run_id, "--store", project.store)
    assert "token *** refused" in shown.output and STORAGE_TOKEN not in shown.output
    assert_nowhere(STORAGE_TOKEN, project, caplog)


# ---- the store URL's password, the served agent's error answers ---------------------------


def test_a_database_urls_password_is_not_printed(project: Project) -> None:
    pytest.importorskip("psycopg", reason="the PostgreSQL driver (extra: postgres) is missing")
    import socket

    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://relayflow:{PG_PASSWORD}@127.0.0.1:{port}/runs?connect_timeout=2"

    listed = project.cli("runs", "list", "--store", url)

    assert listed.exit_code == 1 and "postgresql+psycopg://relayflow:***@127.0.0.1" in listed.output
    assert PG_PASSWORD not in listed.output


def test_a_served_agents_error_answer_and_its_caller_do_not_show_the_key(
    stub: Stub, project: Project, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("uvicorn")
    import httpx

    from relayflow.server.agent_app import create_agent_app
    from tests.server.uvicorn_thread import serving

    monkeypatch.setenv("RF_TEST_OPENAI_KEY", API_KEY)
    stub.respond = openai_rejects_the_key
    served = project.write(
        "served.yaml", ECHOED_KEY_WORKFLOW.format(name="served", base_url=f"{stub.url}/v1")
    )
    caller = project.write(
        "caller.yaml",
        "name: caller\nworkflow:\n  - name: Remote\n"
        "    type: service\n    protocol: relayflow\n    url: {url}\n"
        "    retries: 0\n",
    )
    caplog.set_level(logging.DEBUG)

    with serving(create_agent_app(served, "Ask")) as url:
        answer = httpx.post(f"{url}/v1/run", json={"data": {"name": "Ada"}}, timeout=30)
        project.write("caller.yaml", caller.read_text().format(url=url))
        ran = project.cli("run", caller, "--input", '{"name": "Ada"}', "--store", project.store)

    assert answer.status_code == 502
    assert "Incorrect API key provided: ***" in answer.json()["detail"]
    assert API_KEY not in answer.text
    assert ran.exit_code == 1 and "answered HTTP 502" in ran.output
    assert API_KEY not in ran.output
    assert_nowhere(API_KEY, project, caplog)
