"""One agent of a workflow served as its own HTTP endpoint (``relayflow serve-agent``): the
handbook's "every agent an independently deployable service", with ``POST /v1/run`` taking a
handoff and answering the step's result, so that a ``service`` step elsewhere can call it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from relayflow.agents.base import Agent, BuildContext
from relayflow.agents.wire import (
    INFO_PATH,
    RUN_PATH,
    ErrorResponse,
    InfoResponse,
    RunRequest,
    RunResponse,
    UsageModel,
)
from relayflow.core.handoff import Handoff
from relayflow.core.result import StepInfo
from relayflow.errors import Problem, ProviderTimeout, RelayflowError, SpecError
from relayflow.errors_http import INVALID_REQUEST, error_body, http_error
from relayflow.schema.workflow import Workflow
from relayflow.scrub import get_logger
from relayflow.spec.loader import load_spec

logger = get_logger("relayflow.server.agent")

_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "The request is invalid, or the agent "
          "cannot process this input (agent_error)."},
    403: {"model": ErrorResponse, "description": "Access denied."},
    429: {"model": ErrorResponse, "description": "The provider is rate limited, or a hard "
          "budget is spent; see Retry-After where it is known."},
    500: {"model": ErrorResponse, "description": "The agent failed unexpectedly."},
    502: {"model": ErrorResponse, "description": "The agent's model provider failed."},
    503: {"model": ErrorResponse, "description": "The provider's circuit breaker is open; see "
          "Retry-After."},
    504: {"model": ErrorResponse, "description": "The step ran past its timeout."},
}  # fmt: skip


class ServedAgent:
    """One agent built from its workflow file: prepared once, then run once per request."""

    def __init__(self, workflow: Workflow, agent_name: str) -> None:
        from relayflow.agents.registry import agent_class

        configs = {config.name: config for config in workflow.agents}
        if agent_name not in configs:
            raise SpecError(
                [
                    Problem(
                        str(workflow.file),
                        0,
                        "",
                        f"no agent named {agent_name!r}",
                        f"use one of: {', '.join(configs)}",
                    )
                ]
            )
        self.workflow = workflow
        self.config = configs[agent_name]
        ctx = BuildContext(
            base_dir=workflow.base_dir,
            workflow_file=workflow.file,
            get_provider=self._provider,
            workflow=workflow,
        )
        self.agent: Agent = agent_class(self.config.type)(self.config, ctx)
        self.versions: dict[str, str] = {}
        self.started = False

    @property
    def name(self) -> str:
        return self.config.name

    def _provider(self, alias: str) -> Any:
        from relayflow.providers.registry import build_provider

        spec = self.workflow.spec
        return build_provider(alias, spec.models.get(alias), self.workflow.base_dir)

    async def start(self) -> None:
        """Prepare the agent (load its script, template, model); a second call does nothing."""
        if self.started:
            return
        await self.agent.prepare()
        self.versions = dict(self.agent.versions())
        self.started = True

    async def stop(self) -> None:
        if self.started:
            self.started = False
            await self.agent.close()

    async def run(self, request: RunRequest) -> RunResponse:
        """Run the agent on one handoff, within the step's ``timeout`` when it has one."""
        from relayflow.core.ids import new_id

        run_id = request.run_id or new_id()
        handoff = Handoff(request.data, (), run_id, request.confidence, tuple(request.flags))
        timeout = self.config.timeout
        began = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                result = await self.agent.run(handoff, StepInfo(run_id, self.name, request.attempt))
        except TimeoutError:
            raise ProviderTimeout(
                f"agent {self.name} did not finish within its timeout of {timeout:g} s"
            ) from None
        return RunResponse(
            agent=self.name,
            type=self.config.type,
            data=dict(result.data),
            confidence=result.confidence,
            verdict=result.verdict,
            reason=result.reason,
            flags=list(result.flags),
            usage=UsageModel.of(result.usage),
            versions={**self.versions, **result.versions},
            seconds=time.perf_counter() - began,
        )

    def info(self) -> InfoResponse:
        from relayflow.version import __version__

        return InfoResponse(
            agent=self.name,
            type=self.config.type,
            workflow=self.workflow.name,
            workflow_version=self.workflow.version,
            versions=self.versions,
            relayflow=__version__,
        )


def error_response(exc: Exception) -> JSONResponse:
    """An error in the one shape with its class's status (relayflow/errors_http.py); anything
    relayflow did not raise on purpose is a 500."""
    answer = http_error(exc)
    return JSONResponse(answer.body, status_code=answer.status, headers=dict(answer.headers))


def _validation_response(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - invariant: registered for this type only
    problems = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        message = str(error.get("msg", ""))
        if error["type"] == "json_invalid":  # its loc is ("body", the character's offset)
            where = "body"
            why = (error.get("ctx") or {}).get("error")
            message = f"invalid JSON at character {loc[-1]}" + (f" ({why})" if why else "")
        else:
            where = ".".join(str(p) for p in loc if p != "body") or "body"
        problems.append({"field": where, "message": message, "type": error["type"]})
    detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    content_type = request.headers.get("content-type", "")
    if content_type and "json" not in content_type:
        detail += f" (the body was sent as {content_type}; send Content-Type: application/json)"
    body = error_body(
        "invalid request",
        INVALID_REQUEST,
        f'invalid request: {detail} — send {{"data": {{…}}}} (see /docs)',
        problems,
    )
    return JSONResponse(body, status_code=422)


def create_agent_app(workflow_file: str | Path | Workflow, agent_name: str) -> FastAPI:
    """A FastAPI app serving agent ``agent_name`` of the workflow (a path, or one loaded):
    ``POST /v1/run``, ``POST /infer`` (the plain record in, the output record out),
    ``GET /v1/info`` and ``GET /healthz``. The agent is prepared at startup and closed at
    shutdown; raises SpecError for an invalid file or an unknown agent."""
    workflow = workflow_file if isinstance(workflow_file, Workflow) else load_spec(workflow_file)
    served = ServedAgent(workflow, agent_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await served.start()
        try:
            yield
        finally:
            await served.stop()

    from relayflow.version import __version__

    app = FastAPI(
        title=f"relayflow agent {served.name}",
        description=f"Agent {served.name} ({served.config.type}) of workflow "
        f"{workflow.name}, served by relayflow.",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.served_agent = served
    app.add_exception_handler(RequestValidationError, _validation_response)

    @app.post(RUN_PATH, response_model=RunResponse, responses=_ERRORS)
    async def run(request: RunRequest) -> Any:
        """Run the agent on one handoff; the answer is the step's result."""
        try:
            return await served.run(request)
        except Exception as exc:  # every failure becomes a JSON error with its status
            if not isinstance(exc, RelayflowError):
                logger.exception("agent %s failed", served.name)
            return error_response(exc)

    @app.post("/infer", responses=_ERRORS)
    async def infer(record: dict[str, Any] = Body(...)) -> Any:  # noqa: B008 - FastAPI idiom
        """The handbook's shape: the record as the JSON body, the output record as the answer
        (verdict and confidence in the X-Relayflow-* headers)."""
        try:
            response = await served.run(RunRequest(data=record))
        except Exception as exc:
            if not isinstance(exc, RelayflowError):
                logger.exception("agent %s failed", served.name)
            return error_response(exc)
        headers: dict[str, str] = {"X-Relayflow-Verdict": response.verdict}
        if response.confidence is not None:
            headers["X-Relayflow-Confidence"] = repr(response.confidence)
        return JSONResponse(response.data, headers=headers)

    @app.get(INFO_PATH, response_model=InfoResponse)
    async def info() -> InfoResponse:
        """The served agent, its workflow and the versions that shape its output."""
        return served.info()

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 once the agent is prepared, 503 before."""
        if not served.started:
            return JSONResponse({"status": "starting", "agent": served.name}, status_code=503)
        return JSONResponse({"status": "ok", "agent": served.name})

    return app
