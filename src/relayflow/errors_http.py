"""Every error as HTTP: one table from error class to status and kind, and one JSON shape, used
by both HTTP apps (``relayflow serve``, ``relayflow serve-agent``) and read back by the service
agent's client, so that an error keeps its class across a process boundary.

The shape of every error answer::

    {"error": "one line: what went wrong",
     "type": "not_found",          # stable, snake_case: what a program switches on
     "detail": "…" | [...] | null, # the error's own text where "error" is a fixed title,
                                   # or the list of what was wrong with a rejected request
     "problems": [{...}, ...]}     # each problem: field and message (file, line, fix for a
                                   # workflow file), empty for errors that are not about fields

A user's mistake is never a 500: its class has a 4xx here; 500 is left to the server's own
configuration (ConfigError) and to what relayflow did not raise on purpose. Rate limits and
spent budgets are 429 (``Retry-After`` when the error knows when to retry); a model provider
that failed is 502, one that timed out 504, a provider behind an open circuit breaker and an
unreachable store 503. An AgentError is 422: this input is one the agent cannot process, the
request itself was well formed (409 would say the server's state is at fault).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Any

from relayflow.errors import (
    AccessDenied,
    AgentError,
    BudgetExceeded,
    CircuitOpen,
    ConfigError,
    Conflict,
    InputError,
    NotFound,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RelayflowError,
    SpecError,
    StoreError,
    TooManyBadRecords,
    Unauthenticated,
)
from relayflow.scrub import scrub, scrub_data

#: the ``type`` of a request that the app's schema rejected (not one of relayflow's errors)
INVALID_REQUEST = "invalid_request"
#: the ``type`` of what relayflow did not raise on purpose
INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """How one error class answers over HTTP. With a ``title`` the answer's ``error`` is the
    title and ``detail`` the error's text; without one the text is the ``error`` line itself."""

    status: int
    type: str
    title: str | None = None


#: each error class's answer, most specific first (the first ``isinstance`` match wins)
KINDS: tuple[tuple[type[RelayflowError], ErrorKind], ...] = (
    (SpecError, ErrorKind(422, "invalid_workflow", "invalid workflow")),
    (TooManyBadRecords, ErrorKind(422, "too_many_bad_records")),
    (InputError, ErrorKind(422, "invalid_input")),
    (NotFound, ErrorKind(404, "not_found")),
    (Conflict, ErrorKind(409, "conflict")),
    (Unauthenticated, ErrorKind(401, "unauthenticated")),
    (AccessDenied, ErrorKind(403, "access_denied", "access denied")),
    (AgentError, ErrorKind(422, "agent_error", "the agent could not process this input")),
    (ProviderTimeout, ErrorKind(504, "provider_timeout", "timed out")),
    (RateLimited, ErrorKind(429, "rate_limited", "the model provider is rate limited")),
    (CircuitOpen, ErrorKind(503, "circuit_open", "the model provider is paused after failures")),
    (ProviderError, ErrorKind(502, "provider_error", "the model provider failed")),
    (BudgetExceeded, ErrorKind(429, "budget_exceeded", "a budget is spent")),
    (StoreError, ErrorKind(503, "store_unavailable", "the store is unavailable")),
    (ConfigError, ErrorKind(500, "configuration_error", "the server's configuration is wrong")),
    (RelayflowError, ErrorKind(500, "error", "relayflow failed")),
)
_CLASSES: dict[str, type[RelayflowError]] = {
    **{kind.type: cls for cls, kind in KINDS},
    INVALID_REQUEST: InputError,
}


@dataclass(frozen=True, slots=True)
class HttpError:
    """One error answer: its status, its JSON body (the one shape) and its headers."""

    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


def kind_of(exc: RelayflowError) -> ErrorKind:
    """The answer's status, type and title for ``exc``'s class."""
    return next(kind for cls, kind in KINDS if isinstance(exc, cls))


def error_class(type_name: object) -> type[RelayflowError] | None:
    """The class whose answers carry ``type_name`` (a client reading an error back), if any."""
    return _CLASSES.get(type_name) if isinstance(type_name, str) else None


def status_type(status: int) -> str:
    """The ``type`` of an answer that only has a status (a route not found, a body too large):
    the status's phrase, ``404`` → ``not_found``."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "http_error"
    return phrase.lower().replace(" ", "_").replace("-", "_")


def error_body(
    error: str,
    type_name: str,
    detail: Any = None,
    problems: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The one JSON shape of an error answer; text is scrubbed, since an error's message may
    quote a credential (a store URL's password, a key a provider echoed)."""
    return {
        "error": scrub(error),
        "type": type_name,
        "detail": scrub(detail) if isinstance(detail, str) else scrub_data(detail),
        "problems": [scrub_data(dict(p)) for p in problems],
    }


def http_error(exc: BaseException) -> HttpError:
    """``exc`` as an answer: relayflow's errors by class (KINDS), anything else a 500 that
    names the exception's type and message."""
    if not isinstance(exc, RelayflowError):
        text = f"unexpected {type(exc).__name__}: {_one_line(str(exc))}"
        return HttpError(500, error_body("internal error", INTERNAL_ERROR, text))
    kind = kind_of(exc)
    headers: dict[str, str] = {}
    if kind.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    retry_after = getattr(exc, "retry_after", None)
    if kind.status in (429, 503) and isinstance(retry_after, int | float):
        headers["Retry-After"] = str(max(1, round(retry_after)))
    if isinstance(exc, SpecError):
        problems = [asdict(p) for p in exc.problems]
        body = error_body(kind.title or "", kind.type, [str(p) for p in exc.problems], problems)
    elif kind.title is None:
        body = error_body(_one_line(str(exc)) or kind.type, kind.type)
    else:
        body = error_body(kind.title, kind.type, _one_line(str(exc)))
    return HttpError(kind.status, body, headers)


def _one_line(text: str) -> str:
    return " ".join(text.split())


__all__ = [
    "INTERNAL_ERROR",
    "INVALID_REQUEST",
    "KINDS",
    "ErrorKind",
    "HttpError",
    "error_body",
    "error_class",
    "http_error",
    "kind_of",
    "status_type",
]
