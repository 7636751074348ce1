"""One agent served over HTTP: /v1/run, /infer, /v1/info and /healthz, every error as JSON with
its status, the agent prepared at startup and closed at shutdown, and `relayflow serve-agent`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from relayflow.agents.transform import script_version  # noqa: E402
from relayflow.cli import app as cli_app  # noqa: E402
from relayflow.errors import AgentError, SpecError  # noqa: E402
from relayflow.server.agent_app import create_agent_app  # noqa: E402

UPPER = """
def transform(record):
    if "text" not in record:
        raise KeyError("text")
    return {**record, "upper": record["text"].upper()}
"""

SLOW = """
import asyncio

async def transform(record):
    await asyncio.sleep(30)
    return record
"""

WORKFLOW = """
name: tools
workflow:
  - name: Upper
    type: transform
    script: upper.py
  - name: Slow
    type: transform
    script: slow.py
    timeout: 0.2
  - name: Remote
    type: inference
    model: remote
    prompt: "Repeat {{{{ text }}}}"
models:
  remote:
    provider: openai
    model: any
    base_url: http://127.0.0.1:{port}/v1
    max_retries: 0
    timeout: 5
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def workflow_file(tmp_path: Path) -> Path:
    (tmp_path / "upper.py").write_text(UPPER)
    (tmp_path / "slow.py").write_text(SLOW)
    path = tmp_path / "workflow.yaml"
    # nothing listens on that port: the inference agent's provider is unreachable
    path.write_text(WORKFLOW.format(port=free_port()))
    return path


@pytest.fixture
def client(workflow_file: Path) -> Iterator[TestClient]:
    with TestClient(create_agent_app(workflow_file, "Upper")) as test_client:
        yield test_client


def run(client: TestClient, body: Any) -> tuple[int, dict[str, Any]]:
    response = client.post("/v1/run", json=body)
    return response.status_code, response.json()


def test_run_answers_the_steps_result_with_the_script_version(
    client: TestClient, workflow_file: Path
) -> None:
    status, body = run(client, {"data": {"text": "hi", "id": 7}, "confidence": 0.4})
    assert status == 200
    assert body["data"] == {"text": "hi", "id": 7, "upper": "HI"}
    assert (body["agent"], body["type"], body["verdict"]) == ("Upper", "transform", "ok")
    version = script_version((workflow_file.parent / "upper.py").read_bytes())
    assert body["versions"] == {"script": version}
    assert body["usage"]["model_calls"] == 0


def test_info_and_health_name_the_agent(client: TestClient, workflow_file: Path) -> None:
    info = client.get("/v1/info").json()
    assert (info["agent"], info["type"], info["workflow"]) == ("Upper", "transform", "tools")
    assert info["versions"]["script"] == script_version(
        (workflow_file.parent / "upper.py").read_bytes()
    )
    health = client.get("/healthz")
    assert (health.status_code, health.json()["status"]) == (200, "ok")


def test_infer_takes_the_plain_record_as_the_handbooks_example_does(client: TestClient) -> None:
    response = client.post("/infer", json={"text": "abc"})
    assert response.status_code == 200
    assert response.json() == {"text": "abc", "upper": "ABC"}
    assert response.headers["x-relayflow-verdict"] == "ok"


def test_a_record_sent_without_the_envelope_is_422_naming_each_field(client: TestClient) -> None:
    status, body = run(client, {"text": "hi"})
    assert status == 422
    assert (body["error"], body["type"]) == ("invalid request", "invalid_request")
    assert "data: Field required" in body["detail"]
    assert "text: Extra inputs are not permitted" in body["detail"]
    assert {p["field"] for p in body["problems"]} == {"data", "text"}


def test_a_confidence_outside_0_to_1_is_422(client: TestClient) -> None:
    status, body = run(client, {"data": {"text": "x"}, "confidence": 1.5})
    assert status == 422
    assert body["detail"].startswith("invalid request: confidence: Input should be less than")


def test_invalid_json_is_422_with_where_it_broke(client: TestClient) -> None:
    response = client.post(
        "/v1/run", content=b'{"data": [1', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "body: invalid JSON at character 11" in response.json()["detail"]


def test_a_form_encoded_body_is_told_to_send_json(client: TestClient) -> None:
    response = client.post("/v1/run", data={"data": "x"})
    assert response.status_code == 422
    assert "send Content-Type: application/json" in response.json()["detail"]


def test_an_input_the_agent_cannot_process_is_422_with_the_agents_message(
    client: TestClient,
) -> None:
    status, body = run(client, {"data": {"txt": "typo"}})
    assert status == 422
    assert body == {
        "error": "the agent could not process this input",
        "type": "agent_error",
        "detail": "upper.py: transform() raised KeyError: 'text'",
        "problems": [],
    }


def test_a_step_past_its_timeout_is_504(workflow_file: Path) -> None:
    with TestClient(create_agent_app(workflow_file, "Slow")) as slow:
        status, body = run(slow, {"data": {}})
    assert status == 504
    assert body["type"] == "provider_timeout"
    assert "did not finish within its timeout of 0.2 s" in body["detail"]


def test_an_unreachable_model_provider_is_502(workflow_file: Path) -> None:
    pytest.importorskip("openai")
    with TestClient(create_agent_app(workflow_file, "Remote")) as remote:
        status, body = run(remote, {"data": {"text": "hi"}})
    assert status == 502
    assert body["type"] == "provider_error"
    assert "unreachable" in body["detail"]


def test_an_unknown_agent_is_a_spec_error_listing_the_agents(workflow_file: Path) -> None:
    with pytest.raises(SpecError) as info:
        create_agent_app(workflow_file, "Nope")
    [problem] = info.value.problems
    assert problem.message == "no agent named 'Nope'"
    assert problem.fix == "use one of: Upper, Slow, Remote"


def test_the_agent_is_prepared_at_startup_and_closed_at_shutdown(workflow_file: Path) -> None:
    app = create_agent_app(workflow_file, "Upper")
    service = app.state.served_agent
    assert not service.started
    with TestClient(app) as test_client:
        assert service.started
        assert service.agent._fn is not None  # the script is loaded once, before any request
        assert test_client.get("/healthz").status_code == 200
    assert not service.started
    assert service.agent._fn is None


def test_a_broken_script_fails_the_startup(workflow_file: Path) -> None:
    (workflow_file.parent / "upper.py").write_text("def other(record):\n    return record\n")
    # validation finds the missing function when the workflow loads, at its line
    with pytest.raises(SpecError, match=r"Upper\.function: .*defines no transform\(\)"):
        create_agent_app(workflow_file, "Upper")


def test_a_script_whose_import_fails_fails_the_startup(workflow_file: Path) -> None:
    # only importing it shows what is wrong (validation reads the source, never runs it)
    (workflow_file.parent / "upper.py").write_text(
        "def transform(record):\n    return record\nraise RuntimeError('no config')\n"
    )
    app = create_agent_app(workflow_file, "Upper")
    with (
        pytest.raises(AgentError, match="importing the script raised RuntimeError"),
        TestClient(app),
    ):
        pass


def test_the_openapi_schema_documents_the_bodies(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    run_op = schema["paths"]["/v1/run"]["post"]
    assert run_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/RunRequest"
    )
    responses = run_op["responses"]
    assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/RunResponse"
    )
    for status in ("422", "502", "503", "504"):
        assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ErrorResponse"
        )
    run_request = schema["components"]["schemas"]["RunRequest"]
    assert run_request["required"] == ["data"]
    assert set(run_request["properties"]) == {"data", "confidence", "flags", "run_id", "attempt"}


# ---- the command ------------------------------------------------------------------------------


def _get(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except (urllib.error.URLError, OSError):
        return None


def test_serve_agent_serves_until_interrupted(workflow_file: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "relayflow", "serve-agent", str(workflow_file), "Upper",
        "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        deadline = time.monotonic() + 60
        while _get(f"{base}/healthz") != 200:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "serve-agent did not come up"
            time.sleep(0.1)
        request = urllib.request.Request(
            f"{base}/v1/run",
            data=json.dumps({"data": {"text": "served"}}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["data"]["upper"] == "SERVED"
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    # uvicorn shuts down gracefully, then hands the signal on: the usual Ctrl-C exit status
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"serving agent Upper (transform) of workflow tools: POST {base}/v1/run" in stderr


def test_serve_agent_with_an_unknown_agent_prints_one_line(workflow_file: Path) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(cli_app, ["serve-agent", str(workflow_file), "Nope"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {workflow_file}: no agent named 'Nope' — use one of: Upper, Slow, Remote"
    ]


def test_serve_agent_with_a_broken_script_fails_before_listening(workflow_file: Path) -> None:
    from typer.testing import CliRunner

    (workflow_file.parent / "upper.py").write_text("x = 1 +\n")
    result = CliRunner().invoke(cli_app, ["serve-agent", str(workflow_file), "Upper"])
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: ") and "syntax error" in line
