"""What a service step may say (``ServiceConfig``) and the checks of it: the URL, the protocol,
the headers and the environment variables they name (agents/service.py calls the API)."""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from relayflow.agents.checks import AgentCheck, template_error
from relayflow.errors import Problem
from relayflow.providers.base import BreakerSpec
from relayflow.schema.file import AgentConfig
from relayflow.scrub import CREDENTIAL_NAME, url_secrets, with_token


class ServiceConfig(AgentConfig):
    """Call an HTTP JSON API with the handoff (agents/service.py). ``protocol: relayflow`` calls
    a ``relayflow serve-agent`` endpoint (``url`` is its base URL) and takes its data,
    confidence, verdict, usage and versions as if the agent ran here; ``protocol: json`` calls
    any API and puts its JSON answer under ``output_field`` (or merges it in).
    ``request_timeout`` bounds one HTTP attempt; the step's ``timeout`` bounds the whole step."""

    url: str = Field(min_length=1)
    protocol: Literal["json", "relayflow"] = "json"
    method: Literal["POST", "PUT", "PATCH", "GET", "DELETE"] = "POST"
    #: values may name environment variables as ``${NAME}``; never write a secret here
    headers: dict[str, str] = Field(default_factory=dict)
    #: header name -> environment variable holding its value (e.g. Authorization: API_TOKEN)
    headers_env: dict[str, str] = Field(default_factory=dict)
    #: a Jinja template rendering the JSON request body (default: the handoff's data)
    body: str | None = None
    output_field: str = Field(default="output", min_length=1)
    merge: bool = False
    #: dotted path of the answer's confidence in the response (``scores.0.value``)
    confidence_field: str | None = None
    request_timeout: float = Field(default=30.0, gt=0)
    #: extra attempts after a connection error, a timeout, HTTP 429 or HTTP 5xx
    retries: int = Field(default=2, ge=0, le=20)
    backoff: float = Field(default=0.5, ge=0)
    max_backoff: float = Field(default=10.0, ge=0)
    breaker: BreakerSpec = BreakerSpec()
    #: what one call costs (an API's price), added to the step's cost
    cost_per_call: float = Field(default=0.0, ge=0)

    @field_validator("breaker", mode="before")
    @classmethod
    def _on_off(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value


#: header names whose value is a credential: it must come from the environment
_SECRET_HEADERS = re.compile(r"authorization|cookie|token|secret|api[-_]?key|password", re.I)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: settings that only ``protocol: json`` uses
_JSON_ONLY = ("body", "merge", "output_field", "confidence_field", "method")


def env_identifiers(value: str) -> list[str]:
    """The environment variables a header value names as ``${NAME}`` (ValueError if a ``$`` is
    not such a reference; ``$$`` is a literal dollar)."""
    template = string.Template(value)
    if not template.is_valid():
        raise ValueError("write ${NAME} for an environment variable and $$ for a dollar sign")
    return template.get_identifiers()


def is_template(source: str) -> bool:
    return "{{" in source or "{%" in source


def service_problems(agent: ServiceConfig, check: AgentCheck) -> list[Problem]:
    return _url(agent, check) + _protocol(agent, check) + _headers(agent, check)


def _syntax(source: str) -> str | None:
    error = template_error(source)
    return None if error is None else error[1]


def _url(agent: ServiceConfig, check: AgentCheck) -> list[Problem]:
    if is_template(agent.url):
        error = _syntax(agent.url)
        if error is None:
            return []
        return [check.problem("url", f"template error: {error}", "fix the Jinja syntax")]
    if re.match(r"^https?://[^/\s]+", agent.url):
        return []
    return [
        check.problem(
            "url",
            f"{agent.url!r} is not an http:// or https:// URL",
            "write the full URL, e.g. http://127.0.0.1:8001",
        )
    ]


def _protocol(agent: ServiceConfig, check: AgentCheck) -> list[Problem]:
    problems = []
    written = agent.model_fields_set
    if agent.protocol == "relayflow":
        if is_template(agent.url):
            problems.append(
                check.problem(
                    "url",
                    "protocol: relayflow needs a fixed URL (the served agent's base URL)",
                    "write the URL that `relayflow serve-agent` prints, without a template",
                )
            )
        for setting in _JSON_ONLY:
            if setting in written:
                problems.append(
                    check.problem(
                        setting,
                        "is not used with protocol: relayflow (the served agent's result is "
                        "the step's result)",
                        "remove it, or set protocol: json",
                    )
                )
        return problems
    if agent.body is not None:
        if agent.method in ("GET", "DELETE"):
            problems.append(
                check.problem(
                    "body",
                    f"a {agent.method} request sends no body",
                    "remove body, or use method: POST",
                )
            )
        error = _syntax(agent.body)
        if error is not None:
            problems.append(
                check.problem("body", f"template error: {error}", "fix the Jinja syntax")
            )
    if agent.merge and "output_field" in written:
        problems.append(
            check.problem(
                "output_field",
                "merge: true puts the answer's keys into the handoff; output_field is not used",
                "remove one of merge and output_field",
            )
        )
    return problems


def _headers(agent: ServiceConfig, check: AgentCheck) -> list[Problem]:
    problems = []
    name = agent.name
    for header, value in agent.headers.items():
        line = check.line("headers", header)
        try:
            names = env_identifiers(value)
        except ValueError as exc:
            problems.append(
                Problem(
                    check.file, line, f"{name}.headers.{header}", "invalid $ reference", str(exc)
                )
            )
            continue
        if not names and _SECRET_HEADERS.search(header):
            problems.append(
                Problem(
                    check.file,
                    line,
                    f"{name}.headers.{header}",
                    "a credential written in the workflow file",
                    f"read it from the environment: `{header}: Bearer ${{API_TOKEN}}`, or "
                    f"headers_env: {{{header}: API_TOKEN}}",
                )
            )
    written = {h.lower() for h in agent.headers}
    for header, var in agent.headers_env.items():
        line = check.line("headers_env", header)
        if not _ENV_NAME.match(var):
            problems.append(
                Problem(
                    check.file,
                    line,
                    f"{name}.headers_env.{header}",
                    f"{var!r} is not an environment variable name",
                    "name the variable that holds the value, e.g. API_TOKEN",
                )
            )
        if header.lower() in written:
            problems.append(
                Problem(
                    check.file,
                    line,
                    f"{name}.headers_env.{header}",
                    "also set under headers",
                    "keep one of them",
                )
            )
    return problems


def service_secrets(agent: ServiceConfig, environ: Mapping[str, str] | None = None) -> set[str]:
    """A service step's credentials: the values of its headers that come from the environment
    or have a credential's name, and what its URL holds (``user:pw@``, ``?api_key=``)."""
    env = os.environ if environ is None else environ
    found = url_secrets(agent.url)
    for name, value in agent.headers.items():
        try:
            names = env_identifiers(value)
        except ValueError:  # validation reports it; the literal may still be a secret
            names = []
        found.update(env.get(var, "") for var in names)
        if names or CREDENTIAL_NAME.search(name):
            found |= with_token(string.Template(value).safe_substitute(env))
    for var in agent.headers_env.values():
        found |= with_token(env.get(var, ""))
    return found
