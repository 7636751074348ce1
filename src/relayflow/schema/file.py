"""Pydantic models of the workflow YAML: the top-level sections and the settings every agent
has. Each agent type's own settings are declared by the type (agents/*.py, ``Agent.Config``),
each provider's by the provider (providers/*.py, a ProviderConfig)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from relayflow.core.retry import RetryPolicy
from relayflow.providers.base import ProviderConfig, Section
from relayflow.schema.optimize import OptimizeSpec


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


#: a ``models:`` entry, as the rest of relayflow reads it: the base of every provider's config
#: (each provider's own settings are in its subclass, providers/*.py)
ModelSpec = ProviderConfig


class _ByProvider:
    """How a ``models:`` entry is validated and explained: by the config of the provider it
    names (providers/registry.py), which is imported only when a file names it."""

    def __call__(self, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if not isinstance(value, Mapping | ProviderConfig):
            return handler(value)  # pydantic's own error: not a mapping
        from relayflow.providers.registry import provider_config

        return provider_config(value)

    def model_for(self, raw: Any) -> type[BaseModel] | None:
        """The config class that validates ``raw`` (for the names it knows, in an error)."""
        from relayflow.errors import RelayflowError
        from relayflow.providers.registry import DEFAULT, config_class

        name = raw.get("provider", DEFAULT) if isinstance(raw, Mapping) else DEFAULT
        try:
            return config_class(name) if isinstance(name, str) else None
        except RelayflowError:
            return None

    def elsewhere(self, key: str, raw: Any) -> tuple[str, str] | None:
        """The message and fix for ``key`` that this entry's provider lacks but another has."""
        from relayflow.providers.registry import DEFAULT, setting_owner

        name = raw.get("provider", DEFAULT) if isinstance(raw, Mapping) else DEFAULT
        found = setting_owner(key, name)
        if found is None:
            return None
        owner, fix = found
        return f"`{key}` is a {owner} setting, but the provider is {name!r}", fix


BY_PROVIDER = _ByProvider()
#: the type of a ``models:`` entry in WorkflowSpec: validated by its provider's config
ModelEntry = Annotated[ProviderConfig, WrapValidator(BY_PROVIDER), BY_PROVIDER]


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
    models: dict[str, ModelEntry] = Field(default_factory=dict)
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
    #: what ``relayflow optimize`` may vary and what it measures (schema/optimize.py)
    optimize: OptimizeSpec | None = None

    @model_validator(mode="after")
    def _attach_models(self) -> WorkflowSpec:
        # a router resolves its candidates by alias: give every entry the section it lives in
        section = Section(self.models)
        for spec in self.models.values():
            spec._section = section
        return self
