"""Checks of a ``service`` step's settings, each reported on one line at its own line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from relayflow.agents.service import ServiceConfig
from relayflow.errors import Problem
from relayflow.spec.loader import load_spec

Write = Callable[..., Path]
Problems = Callable[[str], list[Problem]]


def _service(*lines: str) -> str:
    text = "workflow:\n  - name: call\n    type: service\n"
    return text + "".join(f"    {line}\n" for line in lines)


def test_a_full_service_step_loads(write: Write) -> None:
    path = write(
        _service(
            "url: https://api.example.com/v1/score",
            "headers: {Authorization: 'Bearer ${SCORE_TOKEN}', X-Team: support}",
            "headers_env: {X-Api-Key: SCORE_KEY}",
            "body: '{\"text\": {{ text | tojson }}}'",
            "merge: true",
            "confidence_field: scores.0",
            "request_timeout: 5",
            "retries: 3",
            "breaker: {failures: 3, reset_after: 10}",
        )
    )
    [agent] = load_spec(path).agents
    assert isinstance(agent, ServiceConfig)
    assert (agent.retries, agent.breaker.failures, agent.breaker.reset_after) == (3, 3, 10)
    assert agent.headers_env == {"X-Api-Key": "SCORE_KEY"}


def test_breaker_false_turns_it_off(write: Write) -> None:
    [agent] = load_spec(write(_service("url: http://x.test", "breaker: false"))).agents
    assert isinstance(agent, ServiceConfig) and not agent.breaker.enabled


def test_the_url_must_be_http(problems: Problems) -> None:
    [problem] = problems(_service("url: api.example.com/score"))
    assert (problem.line, problem.field) == (4, "call.url")
    assert problem.message == "'api.example.com/score' is not an http:// or https:// URL"


def test_a_missing_url_is_reported(problems: Problems) -> None:
    [problem] = problems(_service("protocol: json"))
    assert problem.field == "call.url"
    assert "missing" in problem.message or "required" in problem.message


def test_a_template_error_in_the_body(problems: Problems) -> None:
    [problem] = problems(_service("url: http://x.test", "body: '{\"a\": {{ text }'"))
    assert (problem.line, problem.field) == (5, "call.body")
    assert problem.message.startswith("template error: ")


def test_a_get_has_no_body(problems: Problems) -> None:
    [problem] = problems(_service("url: http://x.test", "method: GET", "body: '{}'"))
    assert (problem.field, problem.message) == ("call.body", "a GET request sends no body")


def test_a_credential_written_in_the_file_is_refused(problems: Problems) -> None:
    [problem] = problems(
        _service("url: http://x.test", "headers:", "  Authorization: Bearer sk-live-123")
    )
    assert (problem.line, problem.field) == (6, "call.headers.Authorization")
    assert problem.message == "a credential written in the workflow file"
    assert "${API_TOKEN}" in problem.fix


def test_a_malformed_dollar_reference(problems: Problems) -> None:
    [problem] = problems(_service("url: http://x.test", "headers: {X-Team: '${TEAM'}"))
    assert (problem.field, problem.message) == ("call.headers.X-Team", "invalid $ reference")


def test_headers_env_names_a_variable(problems: Problems) -> None:
    [problem] = problems(
        _service("url: http://x.test", "headers_env:", "  Authorization: Bearer token")
    )
    assert (problem.line, problem.field) == (6, "call.headers_env.Authorization")
    assert problem.message == "'Bearer token' is not an environment variable name"


def test_relayflow_protocol_rejects_json_only_settings(problems: Problems) -> None:
    found = problems(
        _service(
            "url: http://127.0.0.1:8001",
            "protocol: relayflow",
            "output_field: answer",
            "confidence_field: p",
        )
    )
    assert [(p.field, p.line) for p in found] == [
        ("call.output_field", 6),
        ("call.confidence_field", 7),
    ]
    assert found[0].message.startswith("is not used with protocol: relayflow")


def test_relayflow_protocol_needs_a_fixed_url(problems: Problems) -> None:
    [problem] = problems(_service("url: 'http://{{ host }}:8001'", "protocol: relayflow"))
    assert problem.field == "call.url"
    assert "needs a fixed URL" in problem.message


def test_merge_and_output_field_conflict(problems: Problems) -> None:
    [problem] = problems(_service("url: http://x.test", "merge: true", "output_field: answer"))
    assert problem.field == "call.output_field"
    assert problem.message.startswith("merge: true puts the answer's keys")
