"""The service agent: one HTTP call per step to a JSON API or to an agent that another process
serves (``relayflow serve-agent``), with timeouts, retries with backoff and a circuit breaker."""

from __future__ import annotations

import asyncio
import json
import os
import string
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from relayflow.agents.base import Agent, BuildContext
from relayflow.agents.service_config import ServiceConfig as ServiceConfig
from relayflow.agents.service_config import env_identifiers, is_template, service_secrets
from relayflow.core.result import Result, StepInfo, Usage
from relayflow.core.retry import RetryPolicy
from relayflow.errors import (
    AccessDenied,
    AgentError,
    BudgetExceeded,
    InputError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RelayflowError,
)
from relayflow.errors_http import error_class
from relayflow.schema.file import AgentConfig
from relayflow.scrub import SecretScrubber, remember

if TYPE_CHECKING:
    import httpx
    import jinja2

    from relayflow.agents.checks import AgentCheck
    from relayflow.core.handoff import Handoff
    from relayflow.errors import Problem
    from relayflow.providers.breaker import CircuitBreaker

_EXCERPT = 200
#: HTTP statuses worth another attempt: the server is busy or broke, the request was fine
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def remote_kind(body: Any) -> type[RelayflowError] | None:
    """The class that a served agent's error answer keeps here, read from the error shape's
    ``type`` (relayflow/errors_http.py): a verdict on this input (agent_error, invalid_input,
    invalid_request) fails the step as an AgentError; access, budget and provider errors keep
    their class; any other (its store, its configuration) is the endpoint failing: None."""
    kind = error_class(body.get("type")) if isinstance(body, Mapping) else None
    if kind is None:
        return None
    if issubclass(kind, AgentError | InputError):
        return AgentError
    if issubclass(kind, AccessDenied | BudgetExceeded | ProviderError):
        return kind
    return None


class _Transient(Exception):
    """One failed attempt that another attempt may fix; ``error`` is what the step raises if
    none does."""

    def __init__(self, error: RelayflowError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def lookup(value: Any, path: str) -> Any:
    """The item at dotted ``path`` (``scores.0.value``) in a JSON value; KeyError if absent."""
    current = value
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            try:
                current = current[int(part)]
            except IndexError:
                raise KeyError(path) from None
        else:
            raise KeyError(path)
    return current


def retry_after_seconds(header: str | None) -> float | None:
    """The ``Retry-After`` header's delay in seconds (number or HTTP date), None if absent."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    from datetime import UTC, datetime

    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _excerpt(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping) and isinstance(body.get("detail"), str):
        text = body["detail"]
    elif isinstance(body, Mapping) and isinstance(body.get("error"), str):
        text = body["error"]  # an error with no detail: its one line says it
    else:
        text = response.text
    return " ".join(text.split())[:_EXCERPT] or response.reason_phrase


class ServiceAgent(Agent):
    """POST (or ``method``) the handoff to ``url``; see ServiceConfig for the settings.

    Each attempt passes the circuit breaker of its URL (shared by every step of the process
    that calls it): after ``breaker.failures`` consecutive failed attempts (connection error,
    timeout, HTTP 5xx) calls fail at once with CircuitOpen for ``breaker.reset_after`` seconds,
    then one trial call decides. A failed attempt is tried again ``retries`` times, after an
    exponential backoff with jitter (or the server's ``Retry-After``, capped at
    ``max_backoff``). ``transport`` replaces httpx's network transport (tests).
    """

    type_name: ClassVar[str] = "service"
    Config: ClassVar[type[AgentConfig]] = ServiceConfig
    config: ServiceConfig

    @classmethod
    def validate(cls, config: AgentConfig, check: AgentCheck) -> list[Problem]:
        from relayflow.agents.service_config import service_problems

        assert isinstance(config, ServiceConfig)  # noqa: S101 - narrows the type; the registry pairs each type with its Config
        return service_problems(config, check)

    @classmethod
    def secrets(cls, config: AgentConfig, environ: Mapping[str, str]) -> set[str]:
        assert isinstance(config, ServiceConfig)  # noqa: S101 - narrows the type; the registry pairs each type with its Config
        return service_secrets(config, environ)

    def __init__(
        self,
        config: AgentConfig,
        ctx: BuildContext,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not isinstance(config, ServiceConfig):
            config = ServiceConfig.model_validate(config.model_dump())
        super().__init__(config, ctx)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._breaker: CircuitBreaker | None = None
        self._url: jinja2.Template | None = None
        self._body: jinja2.Template | None = None
        self._remote: dict[str, str] = {}
        self._scrub = SecretScrubber()
        self._policy = RetryPolicy(
            attempts=config.retries + 1, backoff=config.backoff, max_backoff=config.max_backoff
        )
        self._where = f"service step {config.name}"

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self._breaker

    def versions(self) -> Mapping[str, str]:
        out = {**self._remote, "service": self.config.url}
        if self.config.protocol == "relayflow":
            out["protocol"] = "relayflow"
        if self.config.body is not None:
            from relayflow.prompts.templates import prompt_hash

            out["body"] = prompt_hash(self.config.body)
        return out

    # ---- lifecycle ---------------------------------------------------------------------------

    async def prepare(self) -> None:
        if self._client is not None:
            return
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - httpx comes with the http extra
            raise AgentError(f"{self._where}: needs httpx: pip install 'relayflow[http]'") from exc
        cfg = self.config
        self._url = self._compile(cfg.url, "url") if is_template(cfg.url) else None
        self._body = self._compile(cfg.body, "body") if cfg.body is not None else None
        if cfg.breaker.enabled:
            from relayflow.providers.breaker import breaker_for

            self._breaker = breaker_for(
                f"service:{cfg.url}",
                failure_threshold=cfg.breaker.failures,
                reset_timeout=cfg.breaker.reset_after,
            )
        headers = self._headers()
        # an endpoint may echo the token it was sent in an error body: scrub its own headers
        self._scrub = remember(service_secrets(cfg))
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(cfg.request_timeout),
            transport=self._transport,
        )
        if cfg.protocol == "relayflow":
            try:
                self._remote = await self._info()
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _headers(self) -> dict[str, str]:
        """The configured headers with ``${NAME}`` filled from the environment."""
        cfg = self.config
        headers: dict[str, str] = {}
        for name, value in cfg.headers.items():
            try:
                names = env_identifiers(value)
            except ValueError as exc:
                raise AgentError(f"{self._where}: headers.{name}: {exc}") from None
            missing = [n for n in names if not os.environ.get(n)]
            if missing:
                raise AgentError(
                    f"{self._where}: headers.{name} needs the environment variable "
                    f"{missing[0]}, which is not set — export {missing[0]}=…"
                )
            headers[name] = string.Template(value).substitute(os.environ)
        for name, var in cfg.headers_env.items():
            found = os.environ.get(var)
            if not found:
                raise AgentError(
                    f"{self._where}: headers_env.{name} names the environment variable {var}, "
                    f"which is not set — export {var}=…"
                )
            headers[name] = found
        return headers

    def _compile(self, source: str, setting: str) -> jinja2.Template:
        import jinja2

        from relayflow.prompts.templates import environment

        try:
            return environment().from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise AgentError(
                f"{self._where}: {setting}: template syntax error: {exc.message} — fix the Jinja "
                "syntax"
            ) from exc

    # ---- one step ----------------------------------------------------------------------------

    async def run(self, handoff: Handoff, step: StepInfo) -> Result:
        if self._client is None:
            await self.prepare()
        cfg = self.config
        if cfg.protocol == "relayflow":
            return await self._run_relayflow(handoff, step)
        url = self._render_url(handoff)
        body = self._render_body(handoff) if cfg.method not in ("GET", "DELETE") else None
        response = await self._send(cfg.method, url, body)
        answer = self._json(response, url) if response.content else None
        confidence = None
        if cfg.confidence_field is not None:
            confidence = self._confidence(answer, cfg.confidence_field, url)
        if cfg.merge:
            if not isinstance(answer, Mapping):
                raise ProviderError(
                    f"{self._where}: {url} answered {type(answer).__name__}, not a JSON object, "
                    "so merge: true has nothing to merge — set output_field instead"
                )
            data = {**handoff.data, **answer}
        else:
            data = {**handoff.data, cfg.output_field: answer}
        usage = Usage(cost=cfg.cost_per_call) if cfg.cost_per_call else Usage()
        return Result(data=data, confidence=confidence, usage=usage)

    async def _run_relayflow(self, handoff: Handoff, step: StepInfo) -> Result:
        from pydantic import ValidationError

        from relayflow.agents.wire import RUN_PATH, RunResponse

        url = self.config.url.rstrip("/") + RUN_PATH
        request = {
            "data": dict(handoff.data),
            "confidence": handoff.confidence,
            "flags": list(handoff.flags),
            "run_id": handoff.run_id or None,
            "attempt": step.attempt,
        }
        response = await self._send("POST", url, request)
        try:
            answer = RunResponse.model_validate(self._json(response, url))
        except ValidationError as exc:
            raise ProviderError(
                f"{self._where}: {url} is not a relayflow agent endpoint (its answer does not "
                f"match /v1/run: {exc.errors()[0]['msg']}) — use protocol: json for other APIs"
            ) from exc
        usage = answer.usage.usage()
        if self.config.cost_per_call:
            usage = usage + Usage(cost=self.config.cost_per_call)
        versions = {**answer.versions, **self.versions()}
        flags = tuple(answer.flags)
        verdict = answer.verdict
        reason = answer.reason
        if verdict == "escalate" and self.ctx.reviewers_downstream.get(self.name):
            # a reviewer step follows here: it parks the run, this step only flags the item
            verdict = "ok"
            flags = (*flags, reason or f"{answer.agent} escalated")
            reason = ""
        return Result(
            data=answer.data,
            confidence=answer.confidence,
            usage=usage,
            verdict=verdict,
            reason=reason,
            versions=versions,
            flags=flags,
        )

    async def _info(self) -> dict[str, str]:
        """The served agent's versions, prefixed ``remote.``; the service's name and type."""
        from pydantic import ValidationError

        from relayflow.agents.wire import INFO_PATH, InfoResponse

        url = self.config.url.rstrip("/") + INFO_PATH
        response = await self._send("GET", url, None)
        try:
            info = InfoResponse.model_validate(self._json(response, url))
        except ValidationError as exc:
            raise ProviderError(
                f"{self._where}: {url} is not a relayflow agent endpoint — start one with "
                "`relayflow serve-agent FILE AGENT`, or use protocol: json for other APIs"
            ) from exc
        return {
            **{f"remote.{key}": value for key, value in info.versions.items()},
            "remote.agent": info.agent,
            "remote.type": info.type,
            "remote.workflow": f"{info.workflow}@{info.workflow_version}",
        }

    def _context(self, handoff: Handoff) -> dict[str, Any]:
        data = dict(handoff.data)
        context = {k: v for k, v in data.items() if isinstance(k, str)}
        context.update(data=data, confidence=handoff.confidence, run_id=handoff.run_id)
        return context

    def _render(self, template: jinja2.Template, handoff: Handoff, setting: str) -> str:
        import jinja2

        try:
            return template.render(self._context(handoff))
        except jinja2.UndefinedError as exc:
            raise AgentError(
                f"{self._where}: {setting}: {exc.message}; the handoff has "
                f"{', '.join(sorted(map(str, handoff.data))) or 'no keys'} — fix the template"
            ) from exc
        except Exception as exc:  # an error in the template's own expressions
            raise AgentError(f"{self._where}: {setting}: {type(exc).__name__}: {exc}") from exc

    def _render_url(self, handoff: Handoff) -> str:
        if self._url is None:
            return self.config.url
        url = self._render(self._url, handoff, "url").strip()
        if not url.startswith(("http://", "https://")):
            raise AgentError(
                f"{self._where}: url rendered to {url[:_EXCERPT]!r}, not an http(s) URL — check "
                "the handoff fields it uses"
            )
        return url

    def _render_body(self, handoff: Handoff) -> Any:
        if self._body is None:
            return dict(handoff.data)
        text = self._render(self._body, handoff, "body")
        try:
            return json.loads(text)
        except ValueError as exc:
            raise AgentError(
                f"{self._where}: body rendered to invalid JSON ({exc}): {text[:_EXCERPT]!r} — "
                "use the tojson filter for values, e.g. {{ data.text | tojson }}"
            ) from exc

    def _json(self, response: httpx.Response, url: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderError(
                self._scrub.text(
                    f"{self._where}: {url} answered HTTP {response.status_code} with invalid "
                    f"JSON: {response.text[:_EXCERPT]!r}"
                )
            ) from exc

    def _confidence(self, answer: Any, path: str, url: str) -> float:
        try:
            value = lookup(answer, path)
        except KeyError:
            raise ProviderError(
                f"{self._where}: the answer of {url} has no {path!r} (confidence_field) — fix "
                "confidence_field or remove it"
            ) from None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ProviderError(
                f"{self._where}: the answer's {path} is {value!r}, not a number between 0 and 1 "
                "(confidence_field)"
            )
        return float(value)

    # ---- HTTP with retries and the breaker ---------------------------------------------------

    async def _send(self, method: str, url: str, body: Any) -> httpx.Response:
        """One call with its retries; raises the last attempt's error when none succeeds."""
        from relayflow.core.retry import backoff_delay

        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(method, url, body)
            except _Transient as failed:
                if attempt > self.config.retries:
                    raise failed.error from failed.error.__cause__
                delay = failed.retry_after
                if delay is None:
                    delay = backoff_delay(self._policy, attempt)
                await asyncio.sleep(min(delay, self.config.max_backoff))

    async def _attempt(self, method: str, url: str, body: Any) -> httpx.Response:
        import httpx

        client = self._client
        assert client is not None  # noqa: S101 - invariant: prepare() made it
        breaker = self._breaker
        if breaker is not None and not breaker.allow():
            raise breaker.refuse()
        try:
            response = await client.request(method, url, json=body)
        except httpx.TimeoutException as exc:
            if breaker is not None:
                breaker.record_failure()
            error: RelayflowError = ProviderTimeout(
                self._scrub.text(
                    f"{self._where}: {url} did not answer within "
                    f"{self.config.request_timeout:g} s (request_timeout)"
                )
            )
            error.__cause__ = exc
            raise _Transient(error) from exc
        except httpx.TransportError as exc:
            if breaker is not None:
                breaker.record_failure()
            error = ProviderError(
                self._scrub.text(f"{self._where}: {url} is unreachable: {exc or type(exc)}")
            )
            error.__cause__ = exc
            raise _Transient(error) from exc
        except BaseException:  # cancelled (the step's timeout): no verdict on the server
            if breaker is not None:
                breaker.release()
            raise
        status = response.status_code
        if breaker is not None:
            if status >= 500:
                breaker.record_failure()
            else:
                breaker.record_success()  # it answered: a 4xx is about the request
        if status < 400:
            return response
        self._raise_for(response, url)

    def _raise_for(self, response: httpx.Response, url: str) -> NoReturn:
        status = response.status_code
        detail = _excerpt(response)
        # an endpoint may echo the credentials it was sent in its error body
        message = self._scrub.text(f"{self._where}: {url} answered HTTP {status}: {detail}")
        kind: type[RelayflowError] | None = None
        if self.config.protocol == "relayflow":
            try:
                body = response.json()
            except ValueError:
                body = None
            kind = remote_kind(body)
        if kind is not None and not issubclass(kind, ProviderError):
            raise kind(message)  # the endpoint's verdict on this input or caller: no retry
        if status in RETRY_STATUSES:
            transient = kind or (RateLimited if status == 429 else ProviderError)
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            raise _Transient(transient(message), retry_after)
        if kind is None:
            # 400 and 422 judge this input; other 4xx the endpoint or the credentials
            kind = AgentError if status in (400, 422) else ProviderError
        raise kind(message)
