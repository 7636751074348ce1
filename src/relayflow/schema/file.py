"""Pydantic models of the workflow YAML: the top-level sections and each agent type's settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from relayflow.core.retry import RetryPolicy


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class CompressSpec(_Strict):
    """``compress: {max_tokens: 300}``: each long text field of the handoff is cleaned
    (whitespace, HTML, boilerplate lines) and, with ``method: extractive``, cut to the sentences
    most relevant to the prompt's instruction (or ``query``) within ``max_tokens``, in order."""

    max_tokens: int | None = Field(default=None, ge=1)
    #: the handoff fields to compress (default: every string longer than max_tokens)
    fields: list[str] | None = None
    #: regular expressions: sentences that match are kept first
    keep: list[str] = Field(default_factory=list)
    method: Literal["extractive", "clean"] = "extractive"
    #: what relevance is measured against (Jinja over the handoff; default: the template's
    #: own words, i.e. its instruction)
    query: str | None = None


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
    #: shorten long handoff text before the prompt is rendered (prompts/compress.py)
    compress: CompressSpec | None = None


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


class RateLimitSpec(_Strict):
    """How fast one process may call a model: calls and tokens (prompt + ``max_tokens``) per
    minute. A call over the rate waits for room; it never fails for it."""

    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)


class BreakerSpec(_Strict):
    """A router's circuit breaker per candidate: after ``failures`` consecutive errors the
    candidate is skipped for ``reset_after`` seconds, then tried once (providers/breaker.py)."""

    enabled: bool = True
    failures: int = Field(default=5, ge=1)
    reset_after: float = Field(default=30.0, ge=0)


class OutcomesSpec(_Strict):
    """How ``strategy: most_accurate`` uses the outcomes recorded in the run store (review
    decisions and labels of the answers each candidate gave; providers/outcomes.py): a candidate
    is ranked on its accuracy once it has ``minimum`` outcomes for the step, and the store is
    read again at most every ``refresh`` seconds."""

    minimum: int = Field(default=20, ge=1)
    refresh: float = Field(default=60.0, gt=0)


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


AGENT_CONFIGS["service"] = ServiceConfig


RouterStrategy = Literal["cascade", "cheapest", "fastest", "most_accurate", "weighted"]


class _Section:
    """The ``models:`` map a router resolves its candidates in (set by WorkflowSpec). Compared
    by the settings it holds, so that a router that names itself cannot make ``==`` recurse."""

    __slots__ = ("models",)

    def __init__(self, models: Mapping[str, ModelSpec]) -> None:
        self.models = models

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Section):
            return NotImplemented
        mine = {k: v.model_dump() for k, v in self.models.items()}
        return mine == {k: v.model_dump() for k, v in other.models.items()}

    __hash__ = None  # type: ignore[assignment]


class ModelSpec(_Strict):
    """A model alias: which provider serves it, what it costs, how it is called.

    ``provider: router`` makes the alias a router over other aliases of the same ``models:``
    section (``candidates``), picked by ``strategy``; see providers/router.py."""

    provider: Literal["llama_cpp", "openai", "sklearn", "router"] = "llama_cpp"
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
    # provider: router only (checked in spec/validate.py)
    strategy: RouterStrategy | None = None
    candidates: list[str] = Field(default_factory=list)
    #: cascade: an answer whose confidence is under this goes on to the next candidate
    threshold: float | None = Field(default=None, ge=0, le=1)
    #: weighted: the share of calls per candidate (any positive numbers; normalised)
    weights: dict[str, float] = Field(default_factory=dict)
    #: aliases tried in order when every candidate failed (error, timeout, open breaker)
    fallbacks: list[str] = Field(default_factory=list)
    breaker: BreakerSpec = BreakerSpec()
    #: most_accurate: how recorded outcomes rank the candidates
    outcomes: OutcomesSpec = OutcomesSpec()
    _section: _Section | None = PrivateAttr(default=None)

    @property
    def section(self) -> Mapping[str, ModelSpec]:
        """The ``models:`` map this entry was loaded in (empty for a spec built on its own)."""
        return self._section.models if self._section is not None else {}

    def in_section(self, models: Mapping[str, ModelSpec]) -> ModelSpec:
        """This spec, attached to ``models`` (for specs built outside a WorkflowSpec)."""
        self._section = _Section(models)
        return self

    #: requests and tokens per minute, per process (see govern/ratelimit.py)
    rate_limit: RateLimitSpec | None = None


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


class AccessSpec(_Strict):
    """Who may read what (``relayflow serve``): ``sensitive`` names the agents that touch
    sensitive data; their outputs are shown only to admins and to grants with
    ``see_sensitive`` (govern/access.py)."""

    sensitive: list[str] = Field(default_factory=list)


class BudgetLimit(_Strict):
    """One budget: at most ``currency`` (the prices' unit) and/or ``tokens`` per ``period``
    (UTC day, calendar month, or all time) for each workflow, API token or team. ``soft`` is
    the share of it at which an alert fires; ``hard: false`` alerts without ever refusing."""

    per: Literal["workflow", "team", "token"] = "workflow"
    period: Literal["day", "month", "total"] = "day"
    currency: float | None = Field(default=None, ge=0)
    tokens: int | None = Field(default=None, ge=0)
    soft: float | None = Field(default=None, gt=0, le=1)
    hard: bool = True


class BudgetSpec(_Strict):
    """The ``budget:`` section: limits checked before every model call (govern/budget.py)."""

    limits: list[BudgetLimit] = Field(default_factory=list)


class VariantSpec(_Strict):
    """One arm of an A/B test (see spec/variants.py): the workflow with the settings under
    ``agents`` replacing those of the named agents. ``weight`` is its share of live traffic,
    normalised over all variants; with no weight anywhere the traffic splits equally, and a
    variant without one beside others that have one gets no live traffic (bench still runs it)."""

    name: str = Field(min_length=1)
    weight: float | None = Field(default=None, ge=0)
    description: str | None = None
    agents: dict[str, dict[str, Any]] = Field(default_factory=dict)


class ConsumerSpec(BaseModel):
    """One entry of ``consumers:``: an event consumer type and its settings. Only ``type`` is
    read here; the settings are checked against the type's own model (spec/validate_consumers.py),
    since a plugin type brings its own."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = Field(min_length=1)

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class WorkflowSpec(BaseModel):
    """The whole file. Sections other than ``workflow`` are optional; an unknown one is an error
    (a misspelt ``budget:`` must not drop a spend limit). ``extends:`` is read, and removed,
    before this model sees the file (spec/extends.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    description: str | None = None
    workflow: list[dict[str, Any]] = Field(min_length=1)
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    defaults: Defaults = Defaults()
    evaluate: EvaluateSpec | None = None
    escalation: dict[str, Any] = Field(default_factory=dict)
    compute_rate_per_cpu_second: float = Field(default=0.0, ge=0)
    #: spend and token limits per workflow, team or API token (see govern/budget.py)
    budget: BudgetSpec | None = None
    #: the default step cache for every agent that does not set its own (see engine/cache.py)
    cache: CacheSetting = None
    #: A/B variants: the first is the baseline the others are compared with (spec/variants.py)
    variants: list[VariantSpec] = Field(default_factory=list)
    #: per-agent read permissions of the server (see AccessSpec)
    access: AccessSpec = AccessSpec()
    #: where a lookup's rendered ``source`` may read besides the workflow's folder: folders
    #: (relative to the YAML's folder) and URL prefixes (agents/confine.py)
    allow: list[str] = Field(default_factory=list)
    #: event consumers attached to every runner of this workflow, by every command and the
    #: server (relayflow/consumers/): ``- {type: jsonl, path: events.jsonl}``
    consumers: list[ConsumerSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _attach_models(self) -> WorkflowSpec:
        # a router resolves its candidates by alias: give every entry the section it lives in
        section = _Section(self.models)
        for spec in self.models.values():
            spec._section = section
        return self
