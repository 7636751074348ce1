"""The service agent: any JSON API through httpx's MockTransport (bodies, headers, retries,
timeouts, the circuit breaker), then real agents served by uvicorn and called from a workflow."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from relayflow.agents.base import BuildContext
from relayflow.agents.registry import agent_class
from relayflow.agents.service import ServiceAgent, ServiceConfig, lookup, retry_after_seconds
from relayflow.core.handoff import Handoff
from relayflow.core.result import Result, StepInfo
from relayflow.errors import (
    AccessDenied,
    AgentError,
    BudgetExceeded,
    CircuitOpen,
    ProviderError,
    ProviderTimeout,
    RateLimited,
)
from relayflow.providers.breaker import reset_breakers

STEP = StepInfo(run_id="r1", step="score", attempt=1)
URL = "http://api.test/score"

Handler = Callable[[httpx.Request], httpx.Response]


class Api:
    """An httpx transport answering with ``handler`` and keeping every request it saw."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return handler(request)

        self.transport = httpx.MockTransport(record)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


def scripted(*answers: httpx.Response | Exception) -> Api:
    """Answers in order (an exception is raised as the transport's error); the last repeats."""
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return Api(handler)


@pytest.fixture(autouse=True)
def fresh_breakers() -> Iterator[None]:
    reset_breakers()  # breakers are per URL and per process
    yield
    reset_breakers()


def build(ctx: BuildContext, api: Api, **settings: Any) -> ServiceAgent:
    settings.setdefault("url", URL)
    settings.setdefault("backoff", 0)
    config = ServiceConfig(name="score", type="service", **settings)
    return ServiceAgent(config, ctx, transport=api.transport)


def call(agent: ServiceAgent, *handoffs: Handoff) -> list[Result | Exception]:
    """Prepare, run each handoff (keeping errors as values), close."""

    async def go() -> list[Result | Exception]:
        await agent.prepare()
        out: list[Result | Exception] = []
        try:
            for handoff in handoffs:
                try:
                    out.append(await agent.run(handoff, STEP))
                except Exception as exc:
                    out.append(exc)
        finally:
            await agent.close()
        return out

    return asyncio.run(go())


def one(agent: ServiceAgent, data: dict[str, Any], **handoff: Any) -> Result:
    [result] = call(agent, Handoff(data, run_id="r1", **handoff))
    if isinstance(result, Exception):
        raise result
    return result


# ---- protocol: json ---------------------------------------------------------------------------


def test_the_type_is_registered() -> None:
    assert agent_class("service") is ServiceAgent


def test_posts_the_handoff_and_puts_the_answer_under_output_field(ctx: BuildContext) -> None:
    api = scripted(httpx.Response(200, json={"label": "spam", "score": 0.93}))
    result = one(build(ctx, api, output_field="verdict"), {"text": "win $$$"})
    assert result.data == {"text": "win $$$", "verdict": {"label": "spam", "score": 0.93}}
    assert result.confidence is None
    [request] = api.requests
    assert (request.method, str(request.url)) == ("POST", URL)
    assert api.bodies() == [{"text": "win $$$"}]


def test_merge_and_confidence_field(ctx: BuildContext) -> None:
    api = scripted(httpx.Response(200, json={"label": "spam", "scores": [{"p": 0.81}]}))
    agent = build(ctx, api, merge=True, confidence_field="scores.0.p", cost_per_call=0.002)
    result = one(agent, {"text": "hi"})
    assert result.data == {"text": "hi", "label": "spam", "scores": [{"p": 0.81}]}
    assert result.confidence == 0.81
    assert result.usage.cost == 0.002


def test_merge_needs_an_object(ctx: BuildContext) -> None:
    api = scripted(httpx.Response(200, json=["a", "b"]))
    with pytest.raises(ProviderError, match="not a JSON object, so merge: true"):
        one(build(ctx, api, merge=True), {"text": "hi"})


def test_a_confidence_that_is_not_a_probability_is_a_provider_error(ctx: BuildContext) -> None:
    api = scripted(httpx.Response(200, json={"score": 7}))
    with pytest.raises(ProviderError, match="answer's score is 7, not a number between 0 and 1"):
        one(build(ctx, api, confidence_field="score"), {"text": "hi"})


def test_a_body_template_renders_json_from_the_handoff(ctx: BuildContext) -> None:
    api = scripted(httpx.Response(200, json={"answer": "Paris"}))
    body = '{"question": {{ question | tojson }}, "context": {{ data.doc | tojson }}, "k": 3}'
    result = one(build(ctx, api, body=body), {"question": 'the "capital"?', "doc": "Paris…"})
    assert api.bodies() == [{"question": 'the "capital"?', "context": "Paris…", "k": 3}]
    assert result.data["output"] == {"answer": "Paris"}


def test_a_body_that_renders_invalid_json_names_the_tojson_filter(ctx: BuildContext) -> None:
    api = scripted(httpx.Response(200, json={}))
    with pytest.raises(AgentError, match="body rendered to invalid JSON .* tojson"):
        one(build(ctx, api, body='{"q": {{ q }}}'), {"q": "two words"})
    assert api.requests == []


def test_a_url_template_and_get(ctx: BuildContext) -> None:
    api = scripted(httpx.Response(200, json={"name": "Ada"}))
    agent = build(ctx, api, url="http://crm.test/customers/{{ customer_id }}", method="GET")
    result = one(agent, {"customer_id": 42})
    [request] = api.requests
    assert (request.method, str(request.url), request.content) == (
        "GET",
        "http://crm.test/customers/42",
        b"",
    )
    assert result.data["output"] == {"name": "Ada"}
    assert agent.versions()["service"] == "http://crm.test/customers/{{ customer_id }}"


def test_headers_come_from_the_environment(
    ctx: BuildContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORE_TOKEN", "s3cret")
    monkeypatch.setenv("TENANT", "acme")
    api = scripted(httpx.Response(200, json={}))
    agent = build(
        ctx,
        api,
        headers={"Authorization": "Bearer ${SCORE_TOKEN}", "X-Cost": "$$5"},
        headers_env={"X-Tenant": "TENANT"},
    )
    one(agent, {"text": "hi"})
    headers = api.requests[0].headers
    assert headers["authorization"] == "Bearer s3cret"
    assert headers["x-tenant"] == "acme"
    assert headers["x-cost"] == "$5"


def test_a_missing_environment_variable_fails_prepare(
    ctx: BuildContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SCORE_TOKEN", raising=False)
    agent = build(ctx, scripted(httpx.Response(200)), headers_env={"Authorization": "SCORE_TOKEN"})
    with pytest.raises(AgentError, match="environment variable SCORE_TOKEN, which is not set"):
        asyncio.run(agent.prepare())


# ---- retries, timeouts, the breaker ------------------------------------------------------------


def test_retries_a_503_then_succeeds(ctx: BuildContext) -> None:
    api = scripted(
        httpx.Response(503, json={"detail": "warming up"}),
        httpx.Response(502, text="bad gateway"),
        httpx.Response(200, json={"ok": True}),
    )
    result = one(build(ctx, api, retries=2), {"n": 1})
    assert result.data["output"] == {"ok": True}
    assert len(api.requests) == 3
    assert api.bodies() == [{"n": 1}] * 3


def test_gives_up_after_its_retries_with_the_servers_detail(ctx: BuildContext) -> None:
    api = scripted(httpx.Response(503, json={"detail": "model  is\nloading"}))
    with pytest.raises(ProviderError, match=r"answered HTTP 503: model is loading$"):
        one(build(ctx, api, retries=1), {"n": 1})
    assert len(api.requests) == 2


def test_a_429_is_retried_and_then_reported_as_rate_limited(ctx: BuildContext) -> None:
    api = scripted(httpx.Response(429, headers={"Retry-After": "0"}, text="slow down"))
    with pytest.raises(RateLimited, match="HTTP 429: slow down"):
        one(build(ctx, api, retries=2), {"n": 1})
    assert len(api.requests) == 3


def test_a_bad_request_is_not_retried(ctx: BuildContext) -> None:
    api = scripted(httpx.Response(400, json={"detail": "text too long"}))
    with pytest.raises(AgentError, match="HTTP 400: text too long"):
        one(build(ctx, api, retries=3), {"n": 1})
    assert len(api.requests) == 1


def test_an_auth_failure_is_a_provider_error_and_not_retried(ctx: BuildContext) -> None:
    api = scripted(httpx.Response(401, text="no key"))
    with pytest.raises(ProviderError, match="HTTP 401: no key"):
        one(build(ctx, api, retries=3), {"n": 1})
    assert len(api.requests) == 1


def test_a_transport_timeout_is_retried_then_a_provider_timeout(ctx: BuildContext) -> None:
    api = scripted(httpx.ReadTimeout("slow"), httpx.ReadTimeout("slow"))
    with pytest.raises(ProviderTimeout, match=r"did not answer within 1.5 s \(request_timeout\)"):
        one(build(ctx, api, retries=1, request_timeout=1.5), {"n": 1})
    assert len(api.requests) == 2


def test_the_breaker_opens_after_consecutive_failures_and_stops_calling(
    ctx: BuildContext,
) -> None:
    api = scripted(httpx.ConnectError("connection refused"))
    agent = build(ctx, api, retries=0, breaker={"failures": 3, "reset_after": 600})
    results = call(agent, *[Handoff({"n": i}) for i in range(5)])
    kinds = [type(r).__name__ for r in results]
    assert kinds == ["ProviderError"] * 3 + ["CircuitOpen"] * 2
    assert "unreachable: connection refused" in str(results[0])
    assert "is open after 3 consecutive failure(s)" in str(results[3])
    assert len(api.requests) == 3  # the open circuit sent nothing
    assert agent.breaker is not None and agent.breaker.state == "open"


def test_retries_stop_at_an_open_breaker(ctx: BuildContext) -> None:
    api = scripted(httpx.Response(500, text="boom"))
    agent = build(ctx, api, retries=5, breaker={"failures": 2, "reset_after": 600})
    [result] = call(agent, Handoff({"n": 1}))
    assert isinstance(result, CircuitOpen)
    assert len(api.requests) == 2


def test_after_reset_after_one_trial_call_closes_the_breaker(ctx: BuildContext) -> None:
    api = scripted(
        httpx.Response(500, text="boom"),
        httpx.Response(500, text="boom"),
        httpx.Response(200, json={"ok": True}),
    )
    agent = build(ctx, api, retries=0, breaker={"failures": 2, "reset_after": 0})
    results = call(agent, Handoff({"n": 1}), Handoff({"n": 2}), Handoff({"n": 3}))
    assert [type(r).__name__ for r in results] == ["ProviderError", "ProviderError", "Result"]
    assert agent.breaker is not None and agent.breaker.state == "closed"


def test_a_4xx_does_not_count_against_the_breaker(ctx: BuildContext) -> None:
    api = scripted(httpx.Response(422, json={"detail": "bad field"}))
    agent = build(ctx, api, retries=0, breaker={"failures": 1, "reset_after": 600})
    results = call(agent, Handoff({"n": 1}), Handoff({"n": 2}))
    assert [type(r).__name__ for r in results] == ["AgentError", "AgentError"]
    assert len(api.requests) == 2


def test_breaker_false_turns_it_off(ctx: BuildContext) -> None:
    api = scripted(httpx.Response(500, text="boom"))
    agent = build(ctx, api, retries=0, breaker=False)
    results = call(agent, *[Handoff({"n": i}) for i in range(7)])
    assert all(type(r) is ProviderError for r in results)
    assert len(api.requests) == 7
    assert agent.breaker is None


def test_helpers() -> None:
    assert lookup({"a": [{"b": 1}]}, "a.0.b") == 1
    with pytest.raises(KeyError):
        lookup({"a": []}, "a.0")
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None


# ---- protocol: relayflow, against a fake served agent ------------------------------------------


def served(run_answer: httpx.Response) -> Api:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/info":
            return httpx.Response(
                200,
                json={
                    "agent": "Classify",
                    "type": "inference",
                    "workflow": "triage",
                    "workflow_version": "abc123",
                    "versions": {"model": "smol", "template": "t1"},
                    "relayflow": "0.1.0",
                },
            )
        return run_answer

    return Api(handler)


ANSWER = {
    "agent": "Classify",
    "type": "inference",
    "data": {"text": "hi", "label": "billing"},
    "confidence": 0.42,
    "verdict": "escalate",
    "reason": "unsure",
    "flags": [],
    "usage": {"input_tokens": 30, "output_tokens": 2, "model_calls": 1, "cost": 0.0001},
    "versions": {"model": "smol", "template": "t1", "prompt": "p9"},
    "seconds": 0.1,
}


def test_relayflow_protocol_carries_the_remote_result(ctx: BuildContext) -> None:
    api = served(httpx.Response(200, json=ANSWER))
    agent = build(ctx, api, url="http://agents.test:8001/", protocol="relayflow")
    result = one(agent, {"text": "hi"}, confidence=0.9, flags=("odd",))
    request = api.requests[-1]
    assert str(request.url) == "http://agents.test:8001/v1/run"
    assert json.loads(request.content) == {
        "data": {"text": "hi"},
        "confidence": 0.9,
        "flags": ["odd"],
        "run_id": "r1",
        "attempt": 1,
    }
    assert result.data == {"text": "hi", "label": "billing"}
    assert (result.confidence, result.verdict, result.reason) == (0.42, "escalate", "unsure")
    assert (result.usage.input_tokens, result.usage.model_calls) == (30, 1)
    assert result.versions["prompt"] == "p9"
    assert result.versions["service"] == "http://agents.test:8001/"
    assert agent.versions()["remote.template"] == "t1"
    assert agent.versions()["remote.workflow"] == "triage@abc123"


def test_a_remote_escalation_only_flags_when_a_reviewer_follows(ctx: BuildContext) -> None:
    import dataclasses

    ctx = dataclasses.replace(ctx, reviewers_downstream={"score": ("Review",)})
    api = served(httpx.Response(200, json=ANSWER))
    result = one(build(ctx, api, url="http://agents.test", protocol="relayflow"), {"text": "hi"})
    assert (result.verdict, result.flags) == ("ok", ("unsure",))


@pytest.mark.parametrize(
    ("status", "error", "raised"),
    [
        (422, "agent_error", AgentError),
        (422, "invalid_request", AgentError),
        (429, "budget_exceeded", BudgetExceeded),
        (403, "access_denied", AccessDenied),
    ],
)
def test_relayflow_protocol_raises_the_remote_error_kind(
    ctx: BuildContext, status: int, error: str, raised: type[Exception]
) -> None:
    body = {"error": "failed", "type": error, "detail": "it broke", "problems": []}
    api = served(httpx.Response(status, json=body))
    agent = build(ctx, api, url="http://agents.test", protocol="relayflow")
    with pytest.raises(raised, match="HTTP .*: it broke"):
        one(agent, {"text": "hi"})
    # the endpoint's verdict, even a 429 for a spent budget, is not worth another attempt
    assert [r.url.path for r in api.requests].count("/v1/run") == 1


def test_relayflow_protocol_refuses_an_endpoint_that_is_not_one(ctx: BuildContext) -> None:
    api = scripted(httpx.Response(200, json={"hello": "world"}))
    agent = build(ctx, api, url="http://other.test", protocol="relayflow")
    with pytest.raises(ProviderError, match="is not a relayflow agent endpoint"):
        asyncio.run(agent.prepare())


# ---- real servers -----------------------------------------------------------------------------


class _Hang(BaseHTTPRequestHandler):
    release = threading.Event()

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.release.wait(10)
        self.send_response(200)
        self.end_headers()


@pytest.fixture
def hanging_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hang)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/slow"
    finally:
        _Hang.release.set()
        server.shutdown()
        server.server_close()
        thread.join()
        _Hang.release.clear()


def test_a_server_that_does_not_answer_times_out(ctx: BuildContext, hanging_url: str) -> None:
    agent = ServiceAgent(
        ServiceConfig(name="slow", type="service", url=hanging_url, request_timeout=0.2, retries=0),
        ctx,
    )
    [result] = call(agent, Handoff({"n": 1}))
    assert isinstance(result, ProviderTimeout)


def test_a_closed_port_is_unreachable(ctx: BuildContext) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = ServiceConfig(
        name="gone", type="service", url=f"http://127.0.0.1:{port}/x", retries=1, backoff=0
    )
    [result] = call(ServiceAgent(config, ctx), Handoff({"n": 1}))
    assert isinstance(result, ProviderError)
    assert "is unreachable" in str(result)


# ---- end to end: a served agent called from a workflow -----------------------------------------

SERVED = """
name: tools
workflow:
  - name: Upper
    type: transform
    script: upper.py
  - name: Classify
    type: inference
    model: smol
    prompt: "Is this about billing or shipping? {{ text }}"
    output: label
    labels: [billing, shipping]
    output_field: label
    max_tokens: 4
"""

UPPER = """
def transform(record):
    return {**record, "upper": record["text"].upper()}
"""

FINISH = """
def transform(record):
    return {**record, "done": True}
"""

CALLER = """
name: caller
workflow:
  - name: Remote
    type: service
    protocol: relayflow
    url: {url}
  - name: Finish
    type: transform
    script: finish.py
"""


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    folder = tmp_path / "tools"
    folder.mkdir()
    (folder / "upper.py").write_text(UPPER)
    path = folder / "workflow.yaml"
    path.write_text(SERVED)
    return path


def _run_caller(folder: Path, url: str) -> tuple[Any, list[Any]]:
    from relayflow.engine.runner import Runner
    from relayflow.spec.loader import load_spec

    (folder / "finish.py").write_text(FINISH)
    path = folder / "caller.yaml"
    path.write_text(CALLER.format(url=url))
    workflow = load_spec(path)

    async def go() -> tuple[Any, list[Any]]:
        async with Runner(workflow, store=f"sqlite:///{folder}/runs.db") as runner:
            result = await runner.run({"text": "where is my refund?"})
            assert runner.store is not None
            return result, runner.store.steps(result.run_id)

    return asyncio.run(go())


def test_a_workflow_calls_a_served_transform_end_to_end(tools: Path, tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    from relayflow.agents.transform import script_version
    from relayflow.server.agent_app import create_agent_app
    from tests.server.uvicorn_thread import serving

    with serving(create_agent_app(tools, "Upper")) as url:
        result, steps = _run_caller(tmp_path, url)
    assert result.status == "succeeded", result.error
    assert result.output == {
        "text": "where is my refund?",
        "upper": "WHERE IS MY REFUND?",
        "done": True,
    }
    remote = steps[0]
    assert (remote.step, remote.agent_type, remote.status) == ("Remote", "service", "finished")
    version = script_version((tools.parent / "upper.py").read_bytes())
    assert remote.versions["script"] == version  # what ran remotely, in this run's lineage
    assert remote.versions["remote.agent"] == "Upper"
    assert remote.versions["service"] == url


def test_a_workflow_calls_a_served_local_model(tools: Path, tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (pip install 'relayflow[llm]')")
    from relayflow.providers.registry import default_gguf_path
    from relayflow.server.agent_app import create_agent_app
    from tests.server.uvicorn_thread import serving

    try:
        default_gguf_path()
    except ProviderError as exc:
        pytest.skip(str(exc))
    with serving(create_agent_app(tools, "Classify")) as url:
        result, steps = _run_caller(tmp_path, url)
    assert result.status == "succeeded", result.error
    assert result.output["label"] in ("billing", "shipping")
    remote = steps[0]
    # the remote model's tokens, calls and confidence count in the calling workflow
    assert remote.model_calls == 1
    assert remote.input_tokens > 0 and remote.output_tokens > 0
    assert remote.confidence is not None and 0 <= remote.confidence <= 1
    assert remote.versions["remote.type"] == "inference"
    assert remote.versions["model_version"]
