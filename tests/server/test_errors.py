"""Every class of the error tree through both real apps (``relayflow serve`` and ``relayflow
serve-agent``): its status, the one JSON shape and its headers, so that no user error is a 500;
and through a served agent back into the ``service`` step that calls it, by the shape's type."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

pytest.importorskip("fastapi")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from relayflow import errors  # noqa: E402
from relayflow.agents.base import BuildContext  # noqa: E402
from relayflow.agents.service import (
    ServiceAgent,  # noqa: E402
    ServiceConfig,  # noqa: E402
)
from relayflow.core.handoff import Handoff  # noqa: E402
from relayflow.core.result import StepInfo  # noqa: E402
from relayflow.errors import Problem, RelayflowError  # noqa: E402
from relayflow.server.agent_app import create_agent_app  # noqa: E402
from relayflow.server.app import create_app  # noqa: E402
from tests.server.helpers import make_token  # noqa: E402

PROBLEM = Problem("wf.yaml", 3, "workflow.0.type", "unknown agent type 'x'", "use one of: …")


@dataclass(frozen=True)
class Case:
    """One error raised inside an app and the answer it must get."""

    error: RelayflowError
    status: int
    type: str
    line: str  # the answer's "error"
    detail: Any = None
    problems: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def body(self) -> dict[str, Any]:
        return {
            "error": self.line,
            "type": self.type,
            "detail": self.detail,
            "problems": self.problems,
        }


CASES = [
    Case(
        errors.SpecError([PROBLEM]),
        422,
        "invalid_workflow",
        "invalid workflow",
        [str(PROBLEM)],
        [
            {
                "file": "wf.yaml",
                "line": 3,
                "field": "workflow.0.type",
                "message": "unknown agent type 'x'",
                "fix": "use one of: …",
            }
        ],
    ),
    Case(
        errors.InputError("--step must be above 0"), 422, "invalid_input", "--step must be above 0"
    ),
    Case(
        errors.TooManyBadRecords("3 bad records, more than 2"),
        422,
        "too_many_bad_records",
        "3 bad records, more than 2",
    ),
    Case(errors.NotFound("no run 'r9'"), 404, "not_found", "no run 'r9'"),
    Case(errors.Conflict("review rv1 is decided"), 409, "conflict", "review rv1 is decided"),
    Case(
        errors.Unauthenticated("invalid or revoked API token"),
        401,
        "unauthenticated",
        "invalid or revoked API token",
        headers={"www-authenticate": "Bearer"},
    ),
    Case(
        errors.AccessDenied("needs role admin"),
        403,
        "access_denied",
        "access denied",
        "needs role admin",
    ),
    Case(
        errors.AgentError("transform() raised\nKeyError: 'text'"),
        422,
        "agent_error",
        "the agent could not process this input",
        "transform() raised KeyError: 'text'",  # one line
    ),
    Case(
        errors.ProviderTimeout("no answer in 5 s"),
        504,
        "provider_timeout",
        "timed out",
        "no answer in 5 s",
    ),
    Case(
        errors.RateLimited("HTTP 429"),
        429,
        "rate_limited",
        "the model provider is rate limited",
        "HTTP 429",
    ),
    Case(
        errors.CircuitOpen("5 failures in a row", retry_after=12.4),
        503,
        "circuit_open",
        "the model provider is paused after failures",
        "5 failures in a row",
        headers={"retry-after": "12"},
    ),
    Case(
        errors.ProviderError("HTTP 500"),
        502,
        "provider_error",
        "the model provider failed",
        "HTTP 500",
    ),
    Case(
        errors.BudgetExceeded("daily budget of 5.00 spent"),
        429,
        "budget_exceeded",
        "a budget is spent",
        "daily budget of 5.00 spent",
    ),
    Case(
        errors.StoreError("database is locked"),
        503,
        "store_unavailable",
        "the store is unavailable",
        "database is locked",
    ),
    # the operator's mistake, not the client's: the one relayflow error that is a 500
    Case(
        errors.ConfigError("drift detection needs river"),
        500,
        "configuration_error",
        "the server's configuration is wrong",
        "drift detection needs river",
    ),
]
IDS = [type(case.error).__name__ for case in CASES]


def _tree(cls: type[RelayflowError]) -> Iterator[type[RelayflowError]]:
    for sub in cls.__subclasses__():
        if sub.__module__ == "relayflow.errors":
            yield sub
            yield from _tree(sub)


def test_every_class_of_the_tree_has_a_case_and_only_configuration_is_a_500() -> None:
    assert {type(case.error) for case in CASES} == set(_tree(RelayflowError))
    assert [
        case.type for case in CASES if case.status >= 500 and case.status not in (502, 503, 504)
    ] == ["configuration_error"]


def _raise(error: BaseException) -> Any:
    def raiser(*_args: Any, **_kwargs: Any) -> NoReturn:
        raise error

    return raiser


# ---- relayflow serve ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    store = str(tmp_path_factory.mktemp("errors") / "runs.db")
    secret = make_token(store, "root", "*=admin")
    with TestClient(create_app(store, workers=1)) as client:
        yield client, secret


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_server_answers_each_error_with_its_status_and_the_one_shape(
    server: tuple[TestClient, str], case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, secret = server
    monkeypatch.setattr(client.app.state.operations, "list_workflows", _raise(case.error))  # type: ignore[attr-defined]
    answer = client.get("/v1/workflows", headers={"Authorization": f"Bearer {secret}"})
    assert (answer.status_code, answer.json()) == (case.status, case.body)
    assert {k: answer.headers.get(k) for k in case.headers} == case.headers


def test_the_servers_own_errors_have_the_shape_too(server: tuple[TestClient, str]) -> None:
    client, secret = server
    anonymous = client.get("/v1/workflows")
    assert anonymous.status_code == 401
    assert anonymous.json()["type"] == "unauthenticated"
    assert anonymous.headers["www-authenticate"] == "Bearer"
    missing = client.get("/v1/runs/nosuch", headers={"Authorization": f"Bearer {secret}"})
    assert (missing.status_code, missing.json()["type"], missing.json()["detail"]) == (
        404,
        "not_found",
        None,
    )
    route = client.get("/v1/nothing-here")
    assert (route.status_code, route.json()["type"]) == (404, "not_found")
    invalid = client.post(
        "/v1/workflows", json={"nope": 1}, headers={"Authorization": f"Bearer {secret}"}
    )
    assert (invalid.status_code, invalid.json()["type"]) == (422, "invalid_request")
    assert invalid.json()["problems"] and all(
        {"field", "message", "type"} <= set(p) for p in invalid.json()["problems"]
    )


# ---- relayflow serve-agent ----------------------------------------------------------------------

WORKFLOW = """
name: tools
workflow:
  - name: Echo
    type: transform
    script: echo.py
"""


@pytest.fixture
def workflow_file(tmp_path: Path) -> Path:
    (tmp_path / "echo.py").write_text("def transform(record):\n    return record\n")
    path = tmp_path / "workflow.yaml"
    path.write_text(WORKFLOW)
    return path


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_served_agent_answers_each_error_with_its_status_and_the_one_shape(
    workflow_file: Path, case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_agent_app(workflow_file, "Echo")
    with TestClient(app) as client:
        monkeypatch.setattr(app.state.served_agent.agent, "run", _raise(case.error))
        for path, body in (("/v1/run", {"data": {"x": 1}}), ("/infer", {"x": 1})):
            answer = client.post(path, json=body)
            assert (answer.status_code, answer.json()) == (case.status, case.body), path
            assert {k: answer.headers.get(k) for k in case.headers} == case.headers


def test_a_served_agent_answers_what_it_did_not_raise_on_purpose_as_a_500(
    workflow_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_agent_app(workflow_file, "Echo")
    with TestClient(app) as client:
        monkeypatch.setattr(app.state.served_agent.agent, "run", _raise(ZeroDivisionError("x")))
        answer = client.post("/v1/run", json={"data": {}})
    assert answer.status_code == 500
    assert answer.json() == {
        "error": "internal error",
        "type": "internal_error",
        "detail": "unexpected ZeroDivisionError: x",
        "problems": [],
    }


# ---- back into the service step that calls a served agent ---------------------------------------

#: what a served agent's error becomes in the calling step: this input's verdict an AgentError,
#: access, budget and provider errors their own class, the endpoint's own failure ProviderError
ROUND_TRIP = [
    (errors.AgentError("bad record"), errors.AgentError),
    (errors.InputError("bad record"), errors.AgentError),
    (errors.AccessDenied("needs a role"), errors.AccessDenied),
    (errors.BudgetExceeded("spent"), errors.BudgetExceeded),
    (errors.ProviderTimeout("slow"), errors.ProviderTimeout),
    (errors.RateLimited("busy"), errors.RateLimited),
    (errors.ProviderError("broken"), errors.ProviderError),
    (errors.StoreError("locked"), errors.ProviderError),
    (errors.ConfigError("needs river"), errors.ProviderError),
]


@pytest.mark.parametrize(
    ("remote", "raised"), ROUND_TRIP, ids=[type(r).__name__ for r, _ in ROUND_TRIP]
)
def test_a_service_step_raises_the_class_that_the_served_agent_answered(
    workflow_file: Path,
    remote: RelayflowError,
    raised: type[RelayflowError],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = create_agent_app(workflow_file, "Echo")
    service = app.state.served_agent
    config = ServiceConfig(
        name="call", type="service", url="http://agent.test", protocol="relayflow", retries=0
    )
    ctx = BuildContext(
        base_dir=workflow_file.parent, workflow_file=None, get_provider=_raise(remote)
    )
    step = ServiceAgent(config, ctx, transport=httpx.ASGITransport(app=app))

    async def go() -> None:
        await service.start()  # the app's lifespan: ASGITransport does not run it
        monkeypatch.setattr(service.agent, "run", _raise(remote))
        try:
            await step.prepare()
            await step.run(Handoff({"x": 1}, run_id="r1"), StepInfo("r1", "call", 1))
        finally:
            await step.close()
            await service.stop()

    with pytest.raises(raised) as info:
        asyncio.run(go())
    assert type(info.value) is raised
    assert str(remote) in str(info.value)
