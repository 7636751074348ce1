"""The HTTP API's request and response bodies (pydantic): what the OpenAPI schema documents."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from relayflow.text import surrogate_message, surrogate_path

#: a workflow's name in a URL: letters, digits, ``_ . -``
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$"
#: the largest batch one request may submit
MAX_BATCH = 1000
#: a workflow bundle: at most this many files, this many bytes in all (decoded)
MAX_BUNDLE_FILES = 200
MAX_BUNDLE_BYTES = 8 << 20

RunStatus = Literal["queued", "running", "waiting_review", "succeeded", "failed", "cancelled"]
ReviewStatus = Literal["pending", "approved", "corrected", "cancelled"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _encodable(cls, data: Any) -> Any:
        # a lone surrogate (JSON allows "\ud800") could be stored but never served again:
        # refuse it here, in any key or value at any depth, naming where it is
        where = surrogate_path(data, "body")
        if where is not None:
            raise PydanticCustomError(
                "unicode_surrogate", "{message}", {"message": surrogate_message(where)}
            )
        return data


class ErrorBody(BaseModel):
    """Every error, in relayflow's one error shape (relayflow/errors_http.py): what went wrong
    in one line, its ``type`` for programs, details (the role needed …) and the problems."""

    error: str
    type: str
    detail: Any = None
    problems: list[dict[str, Any]] = []


# ---- workflows ----------------------------------------------------------------------------------


class BundleFile(_Body):
    """A binary file of a bundle (a model file …), base64-encoded."""

    base64: str = Field(max_length=2 * MAX_BUNDLE_BYTES)


class RegisterWorkflow(_Body):
    """Register a workflow version: its YAML text (with ``files``, a bundle of the scripts,
    templates and data it names, by relative path), or a path under one of the server's
    ``--workflow-root`` folders. The version is the hash of the text and the files."""

    name: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="The workflow's name (default: the YAML's `name:`, else the file's).",
    )
    yaml: str | None = Field(default=None, max_length=1_000_000, description="The YAML text.")
    path: str | None = Field(
        default=None,
        max_length=4096,
        description="A `.yaml` file under one of the server's `--workflow-root` folders.",
    )
    files: dict[str, str | BundleFile] | None = Field(
        default=None,
        max_length=MAX_BUNDLE_FILES,
        description="With `yaml`: the files it names, by path relative to the YAML "
        '(`scripts/prep.py`); text as a string, binary as `{"base64": …}`. Kept with the '
        "version on the server; no absolute paths, `..` or links.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> RegisterWorkflow:
        if (self.yaml is None) == (self.path is None):
            raise ValueError("give exactly one of `yaml` (the text) or `path` (a server file)")
        if self.yaml is not None and self.name is None:
            raise ValueError("a workflow registered by its text needs a `name`")
        if self.files is not None and self.yaml is None:
            raise ValueError("`files` go with `yaml`: a `path` registration keeps its folder")
        return self


class AgentInfo(BaseModel):
    name: str
    type: str
    depends_on: list[str]
    sensitive: bool


class WorkflowVersion(BaseModel):
    version: str
    file: str
    created: float
    registered_by: str | None


class Registration(BaseModel):
    """One registration request that succeeded: who, when, which version and files."""

    registration_id: str
    workflow: str
    version: str
    token_id: str | None
    registered_by: str
    ts: float
    source: Literal["yaml", "bundle", "path"]
    files_hash: str = Field(description="SHA-256 over the text and every file it names.")
    runs_code: bool = Field(description="It runs code: transform scripts, services, pickles.")


class WorkflowInfo(BaseModel):
    name: str
    version: str = Field(description="The latest registered version.")
    description: str | None
    agents: list[AgentInfo]
    versions: list[WorkflowVersion] = Field(description="Every registered version, newest first.")


# ---- runs ---------------------------------------------------------------------------------------


class SubmitRun(_Body):
    input: dict[str, Any] = Field(description="The run's input record.")
    version: str | None = Field(
        default=None, max_length=64, description="A registered version (default: the latest)."
    )
    item_key: str | None = Field(default=None, max_length=500)


class SubmitBatch(_Body):
    inputs: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)
    version: str | None = Field(default=None, max_length=64)


class StepView(BaseModel):
    step: str
    agent_type: str
    status: str
    attempt: int
    actor: str
    output: dict[str, Any] | None
    redacted: bool = Field(description="The output is hidden from this token (sensitive agent).")
    confidence: float | None
    input_tokens: int
    output_tokens: int
    cost: float
    model_seconds: float
    versions: dict[str, str]
    flags: list[str]
    error: str | None
    started: float | None
    ended: float | None


class RunView(BaseModel):
    run_id: str
    workflow: str
    workflow_version: str
    status: RunStatus
    batch_id: str | None
    item_key: str | None
    input: dict[str, Any]
    output: dict[str, Any] | None
    error: str | None
    waiting_step: str | None
    started: float
    ended: float | None
    steps: list[StepView] | None = Field(
        default=None, description="The run's steps (in the run's own view, not in lists)."
    )


class BatchView(BaseModel):
    batch_id: str
    workflow: str
    runs: list[RunView]


# ---- reviews, feedback --------------------------------------------------------------------------


class ReviewView(BaseModel):
    review_id: str
    run_id: str
    step: str
    workflow: str
    status: str
    reason: str
    input: dict[str, Any]
    output: dict[str, Any]
    redacted: bool
    confidence: float | None
    decision: str | None
    decided_output: dict[str, Any] | None
    reviewer: str | None
    created: float
    decided: float | None
    claimed_by: str | None
    claimed: float | None
    instructions: str | None = None
    show: list[str] = Field(default_factory=list)


class CorrectReview(_Body):
    output: dict[str, Any] = Field(description="The corrected output: it replaces the step's.")


class Decision(BaseModel):
    review: ReviewView
    run: RunView


class FeedbackIn(_Body):
    workflow: str = Field(pattern=NAME_PATTERN)
    label: dict[str, Any]
    run_id: str | None = Field(default=None, max_length=64)
    step: str | None = Field(default=None, max_length=200)
    item_key: str | None = Field(default=None, max_length=500)


class FeedbackView(BaseModel):
    feedback_id: str
    workflow: str
    run_id: str | None
    step: str | None
    item_key: str | None
    label: Any
    source: str
    created: float


# ---- metrics, identity, audit -------------------------------------------------------------------


class AgentSummary(BaseModel):
    agent: str
    agent_type: str
    steps: int
    by_human: int
    utilization: float | None = Field(description="Share of this agent's steps done by it.")
    median_seconds: float
    p95_seconds: float


class WorkflowMetrics(BaseModel):
    workflow: str
    runs: int = Field(description="Runs considered (the most recent, up to the limit).")
    by_status: dict[str, int]
    ttr_median: float | None
    ttr_p95: float | None
    cost_per_run: float | None = Field(description="Model cost per succeeded run.")
    tokens_per_run: float | None
    escalation_rate: float | None
    utilization: float | None = Field(description="Steps finished by agents ÷ all steps.")
    agents: list[AgentSummary]


class GrantView(BaseModel):
    workflow: str
    role: str
    see_sensitive: bool
    register_code: bool = False


class Me(BaseModel):
    token_id: str
    name: str
    team: str | None
    grants: list[GrantView]


class DenialView(BaseModel):
    denial_id: str
    ts: float
    token_id: str | None
    token_name: str | None
    action: str
    workflow: str | None
    needed: str
    detail: str


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    queued: int
    running: int
