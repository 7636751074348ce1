"""The JSON shapes of one agent served over HTTP (``relayflow serve-agent``), shared by the server
(server/agent_app.py) and the ``service`` agent that calls it (agents/service.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from relayflow.core.result import Usage

#: the path of one step on a served agent, relative to its base URL
RUN_PATH = "/v1/run"
INFO_PATH = "/v1/info"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunRequest(_Wire):
    """One step's input: the handoff's payload and what the step reads besides it."""

    data: dict[str, Any] = Field(description="The handoff's payload: the record the agent reads.")
    confidence: float | None = Field(
        default=None, ge=0, le=1, description="The confidence of the latest upstream step."
    )
    flags: list[str] = Field(
        default_factory=list, description="Reasons for a human to look, raised upstream."
    )
    run_id: str | None = Field(
        default=None, max_length=200, description="The caller's run id (default: a new one)."
    )
    attempt: int = Field(default=1, ge=1, description="Which attempt of the step this is.")


class UsageModel(_Wire):
    """What the step consumed (model tokens, calls, time inside models, cost)."""

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    model_calls: int = Field(default=0, ge=0)
    model_seconds: float = Field(default=0.0, ge=0)
    cost: float = Field(default=0.0, ge=0)

    @classmethod
    def of(cls, usage: Usage) -> UsageModel:
        return cls(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            model_calls=usage.model_calls,
            model_seconds=usage.model_seconds,
            cost=usage.cost,
        )

    def usage(self) -> Usage:
        return Usage(
            self.input_tokens, self.output_tokens, self.model_calls, self.model_seconds, self.cost
        )


class RunResponse(_Wire):
    """The step's result, as the runner would have recorded it had the agent run in-process."""

    agent: str = Field(description="The served agent's name.")
    type: str = Field(description="The served agent's type.")
    data: dict[str, Any] = Field(description="The output payload (replaces the handoff's data).")
    confidence: float | None = Field(default=None, description="The step's confidence, if any.")
    verdict: Literal["ok", "escalate", "retry", "fail"] = Field(
        default="ok", description="ok; escalate to a human; retry the step; fail the run."
    )
    reason: str = Field(default="", description="Why the verdict is not ok.")
    flags: list[str] = Field(default_factory=list, description="New reasons for a human to look.")
    usage: UsageModel = UsageModel()
    versions: dict[str, str] = Field(
        default_factory=dict, description="The agent's versions (script, prompt, model…)."
    )
    seconds: float = Field(default=0.0, ge=0, description="Time the step took on the server.")


class InfoResponse(_Wire):
    """Which agent this endpoint serves, and the versions that shape its output."""

    agent: str
    type: str
    workflow: str = Field(description="The name of the workflow the agent comes from.")
    workflow_version: str = Field(description="The hash of that workflow file.")
    versions: dict[str, str] = Field(default_factory=dict)
    relayflow: str = Field(description="The relayflow version serving it.")


class ErrorResponse(_Wire):
    """Every error of a served agent, in relayflow's one error shape (relayflow/errors_http.py):
    a one-line ``error``, its ``type`` for programs, the ``detail`` and each ``problem``."""

    error: str = Field(description="One line: what went wrong.")
    type: str = Field(description="agent_error, provider_error, invalid_request, …")
    detail: str | list[Any] | None = Field(
        default=None, description="The error's own text, where `error` is a fixed title."
    )
    problems: list[dict[str, Any]] = Field(
        default_factory=list, description="Each invalid field of a rejected request."
    )
