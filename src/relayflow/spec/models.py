"""Pydantic models of the workflow YAML: the top-level sections and each agent type's settings."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(_Strict):
    """How often a failed step is tried again, with exponential backoff and full jitter."""

    attempts: int = Field(default=1, ge=1, le=100)
    backoff: float = Field(default=0.5, ge=0)
    max_backoff: float = Field(default=30.0, ge=0)
    jitter: bool = True


class CacheSpec(_Strict):
    """Step caching: ``cache: true``, ``cache: false`` or ``cache: {ttl: 3600}`` (seconds)."""

    enabled: bool = True
    ttl: float | None = Field(default=None, gt=0)


CacheSetting = bool | CacheSpec | None


class AgentConfig(_Strict):
    """The settings every agent has. Each type adds its own in a subclass."""

    name: str = Field(min_length=1)
    type: str
    depends_on: list[str] | None = None
    description: str | None = None
    retry: RetryPolicy = RetryPolicy()
    #: reuse this step's result for the same input and versions (default: only inference at
    #: temperature 0); see engine/cache.py
    cache: CacheSetting = None
    timeout: float | None = Field(default=None, gt=0)

    @field_validator("depends_on", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class RetrievalConfig(AgentConfig):
    """Read records: a batch source (first agent) or a lookup templated on the handoff."""

    source: str
    format: Literal["jsonl", "json", "csv", "parquet", "text"] | None = None
    glob: str | None = None
    limit: int | None = Field(default=None, ge=1)
    storage_options: dict[str, Any] = Field(default_factory=dict)
    into: str = "retrieved"
    missing: Literal["fail", "empty"] = "fail"


class TransformConfig(AgentConfig):
    """Call ``function`` (default ``transform``) from a Python script on each record."""

    script: str
    function: str = "transform"
    run_in: Literal["auto", "inline", "thread"] = "auto"


class InferenceConfig(AgentConfig):
    """Call a model (alias from ``models:``) with a Jinja prompt rendered from the handoff."""

    model: str
    prompt_template: str | None = None
    prompt: str | None = None
    system: str | None = None
    output: Literal["text", "json", "label"] = "text"
    labels: list[str] | None = None
    output_schema: str | dict[str, Any] | None = None
    output_field: str = "output"
    features: list[str] | None = None
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0, le=2)
    #: ``output: label`` only: contextual calibration (Zhao et al., 2021). The label scores of
    #: the prompt rendered from a content-free record ("N/A" for every string) are subtracted
    #: from each item's, which undoes a model's bias to some labels. Needs a provider that
    #: reports label scores (the local llama.cpp model does).
    calibrate: bool = False


class QualityCheckConfig(AgentConfig):
    """Check the handoff against a JSON Schema ruleset and a minimum confidence."""

    ruleset: str | None = None
    min_confidence: float = Field(default=0.85, ge=0, le=1)
    on_failure: Literal["retry", "escalate", "fail"] = "escalate"
    field: str | None = None


class HumanReviewConfig(AgentConfig):
    """Park the run for a person when the item was flagged or ``when`` holds."""

    when: str | None = None
    instructions: str | None = None
    show: list[str] | None = None


class RetrainConfig(AgentConfig):
    """Refit or re-prompt a model when its measured performance drops (see the retrain issue)."""

    trigger: Literal["performance_drop", "schedule", "manual"] = "performance_drop"
    target: str | None = None
    metric: str | None = None
    threshold: float | None = None
    schedule: str | None = None


AGENT_CONFIGS: dict[str, type[AgentConfig]] = {
    "retrieval": RetrievalConfig,
    "transform": TransformConfig,
    "inference": InferenceConfig,
    "quality_check": QualityCheckConfig,
    "human_review": HumanReviewConfig,
    "retrain": RetrainConfig,
}


class PriceSpec(_Strict):
    input_per_1m: float = Field(default=0.0, ge=0)
    output_per_1m: float = Field(default=0.0, ge=0)
    per_call: float = Field(default=0.0, ge=0)


class ModelSpec(_Strict):
    """A model alias: which provider serves it, what it costs, how it is called."""

    provider: Literal["llama_cpp", "openai", "sklearn"] = "llama_cpp"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    version: str | None = None
    price: PriceSpec = PriceSpec()
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0)
    context: int = Field(default=2048, ge=128)
    threads: int | None = Field(default=None, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)


class Defaults(_Strict):
    """Settings applied to every agent that does not set its own."""

    retry: RetryPolicy | None = None
    timeout: float | None = Field(default=None, gt=0)
    model: str | None = None


class EvaluateSpec(_Strict):
    """How a workflow's accuracy is measured: ``metric`` over the run output's ``prediction``
    field against a reference — the ``reference`` field of the golden set's record with the
    same ``key`` when ``golden`` is given, else the ``reference`` field the workflow carried
    through to its output (a label that arrived with the input record)."""

    golden: str | None = None
    metric: Literal["accuracy", "f1", "rouge", "bleu", "exact_match", "pass_at_k"] = "accuracy"
    prediction: str = "output"
    reference: str = "expected"
    key: str = "id"
    k: int = Field(default=1, ge=1)


class WorkflowSpec(BaseModel):
    """The whole file. Sections other than ``workflow`` are optional; unknown ones are kept for
    features that read them (``budget``, ``variants``, ``triggers`` …)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str | None = None
    description: str | None = None
    workflow: list[dict[str, Any]] = Field(min_length=1)
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    defaults: Defaults = Defaults()
    evaluate: EvaluateSpec | None = None
    escalation: dict[str, Any] = Field(default_factory=dict)
    compute_rate_per_cpu_second: float = Field(default=0.0, ge=0)
    #: the default step cache for every agent that does not set its own (see engine/cache.py)
    cache: CacheSetting = None
