"""The contract of a model provider, the values that cross it, and the base of every
provider's config (a ``models:`` entry of a workflow file)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr


@dataclass(frozen=True, slots=True)
class Price:
    """What a provider charges: per million input/output tokens and per call (in the currency)."""

    input_per_1m: float = 0.0
    output_per_1m: float = 0.0
    per_call: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens * self.input_per_1m / 1_000_000
            + output_tokens * self.output_per_1m / 1_000_000
            + self.per_call
        )


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """One call to a text model. ``labels`` restricts the answer to one of a fixed set.
    ``text`` is the item's own text (the fields the step's prompt reads), for a model that
    learns from the item rather than reads a prompt (provider: learned)."""

    prompt: str
    system: str | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    labels: Sequence[str] | None = None
    json_schema: Mapping[str, Any] | None = None
    stop: Sequence[str] = ()
    seed: int | None = 0
    text: str | None = None
    #: the caller needs ``label_scores`` (a calibration baseline): a model that cannot give
    #: them abstains, so a router asks one that can
    needs_label_scores: bool = False


@dataclass(frozen=True, slots=True)
class Completion:
    """A model's answer with what it cost. ``confidence`` is in [0, 1] when the backend can tell
    (mean token probability from log-probabilities, or the class probability). In labels mode
    ``label_scores`` holds the log-probability of each label as the whole answer, when the
    backend can tell (the local llama.cpp model does); None otherwise."""

    text: str
    confidence: float | None
    input_tokens: int
    output_tokens: int
    seconds: float
    model: str
    label: str | None = None
    label_scores: Mapping[str, float] | None = None
    #: what the call cost when the provider knows better than ``price.cost(tokens)`` (a router
    #: sums the calls it made, each at its own model's price); None: price it by the provider
    cost: float | None = None
    #: model calls behind this answer (a cascade that escalated made more than one)
    calls: int = 1
    #: the model passed the item on rather than guess (a learned model that has not seen
    #: enough of its labels): ``label`` is None and ``confidence`` 0
    abstained: bool = False


@dataclass(frozen=True, slots=True)
class Prediction:
    """A tabular model's answer: the predicted label and the probability of each label."""

    label: Any
    probabilities: Mapping[str, float] = field(default_factory=dict)
    confidence: float | None = None
    seconds: float = 0.0
    model: str = ""
    #: as Completion.cost, Completion.calls and Completion.abstained
    cost: float | None = None
    calls: int = 1
    abstained: bool = False


def abstained(answer: Completion | Prediction) -> bool:
    """Whether the model passed on the item instead of answering: no label, no text and
    confidence 0 (a learned model that has too few labels answers so; an empty answer of
    unknown confidence is a model's failure, not this). A router passes the call on; a step
    records no answer with confidence 0, which its review gate escalates."""
    if answer.abstained:
        return True
    if answer.label is not None or answer.confidence != 0.0:
        return False
    return not isinstance(answer, Completion) or not answer.text.strip()


@runtime_checkable
class Provider(Protocol):
    """A model behind an alias. Text providers implement ``complete``; tabular ones ``predict``."""

    name: str
    version: str
    price: Price

    async def complete(self, request: CompletionRequest) -> Completion: ...

    async def predict(self, features: Mapping[str, Any]) -> Prediction: ...

    async def close(self) -> None: ...


#: the model files a built provider depends on, each with its (mtime_ns, size) then: a file
#: replaced in place (a promotion) makes a new provider
Files = tuple[tuple[str, tuple[int, int]], ...]
#: builds another alias of the same ``models:`` section (a router's candidates); the registry
#: refuses a routing cycle
BuildMember = Callable[[str, "ProviderConfig"], tuple[Provider, Files]]


class Report(Protocol):
    """Reports a problem at ``models.<alias>.<path>`` of the workflow file."""

    def __call__(
        self, alias: str, path: tuple[str | int, ...], message: str, fix: str = ""
    ) -> None: ...


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceSpec(_Strict):
    input_per_1m: float = Field(default=0.0, ge=0)
    output_per_1m: float = Field(default=0.0, ge=0)
    per_call: float = Field(default=0.0, ge=0)

    def price(self) -> Price:
        return Price(self.input_per_1m, self.output_per_1m, self.per_call)


class RateLimitSpec(_Strict):
    """How fast one process may call a model: calls and tokens (prompt + ``max_tokens``) per
    minute. A call over the rate waits for room; it never fails for it."""

    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)


class BreakerSpec(_Strict):
    """A circuit breaker per endpoint: after ``failures`` consecutive errors it is skipped for
    ``reset_after`` seconds, then tried once (providers/breaker.py)."""

    enabled: bool = True
    failures: int = Field(default=5, ge=1)
    reset_after: float = Field(default=30.0, ge=0)


class Section:
    """The ``models:`` map a router resolves its candidates in (set by WorkflowSpec). Compared
    by the settings it holds, so that a router that names itself cannot make ``==`` recurse."""

    __slots__ = ("models",)

    def __init__(self, models: Mapping[str, ProviderConfig]) -> None:
        self.models = models

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Section):
            return NotImplemented
        mine = {k: v.model_dump() for k, v in self.models.items()}
        return mine == {k: v.model_dump() for k, v in other.models.items()}

    __hash__ = None  # type: ignore[assignment]


class ProviderConfig(_Strict, abc.ABC):
    """A model alias: which provider serves it, what it costs, how it is called. Each provider
    subclasses it with ``provider: Literal["its name"]`` and its own settings, and declares
    what the rest of relayflow asks of a provider (the class attributes and methods below), so
    that nothing outside it switches on its name. Registered in providers/registry.py (or the
    ``relayflow.providers`` entry-point group)."""

    provider: str
    model: str | None = None
    version: str | None = None
    price: PriceSpec = PriceSpec()
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0)
    params: dict[str, Any] = Field(default_factory=dict)
    #: requests and tokens per minute, per process (see govern/ratelimit.py)
    rate_limit: RateLimitSpec | None = None
    _section: Section | None = PrivateAttr(default=None)

    #: the fix shown when ``model:`` is missing; None: the provider starts without one
    model_hint: ClassVar[str | None] = None
    #: the provider loads ``model:`` as a file (validate warns ahead when it does not exist
    #: yet; the server confines and hashes it)
    loads_model_file: ClassVar[bool] = False
    #: loading the model runs code (joblib unpickles): registering it needs ``register_code``
    runs_code: ClassVar[bool] = False
    #: what ``relayflow retrain`` can refit of it: the model file, by learn/sklearn_job.py
    #: (sklearn) or learn/learned_job.py (learned)
    refit: ClassVar[Literal["sklearn", "learned"] | None] = None
    #: the fix shown when another provider's setting is written on this one's entry
    switch_hint: ClassVar[str | None] = None

    @property
    def section(self) -> Mapping[str, ProviderConfig]:
        """The ``models:`` map this entry was loaded in (empty for a spec built on its own)."""
        return self._section.models if self._section is not None else {}

    def in_section(self, models: Mapping[str, ProviderConfig]) -> ProviderConfig:
        """This spec, attached to ``models`` (for specs built outside a WorkflowSpec)."""
        self._section = Section(models)
        return self

    def serves(self) -> frozenset[Literal["text", "tabular"]]:
        """What steps the alias can answer: ``text`` (a prompt: ``complete``) and/or
        ``tabular`` (features: ``predict``). ``relayflow optimize`` tries an alias on a step
        only where it fits."""
        return frozenset({"text"})

    def missing_model_file(self, path: Path) -> tuple[str, str]:
        """What `relayflow validate` warns, and how to fix it, when the model file ``path``
        does not exist yet."""
        return (
            f"model file {path} does not exist yet",
            "create it before running (train and save the model there), or fix the path "
            "(relative to the YAML)",
        )

    def model_file(self) -> str | None:
        """The model file it loads, as written (None when it loads none)."""
        return self.model if self.loads_model_file else None

    def secrets(self, environ: Mapping[str, str]) -> set[str]:
        """The secret values the entry holds or names (read from ``environ``), to be scrubbed
        from what is stored, shown and logged: credentials in ``params`` by default."""
        from relayflow.scrub import credential_values

        return credential_values(self.params)

    def rate_key(self, alias: str, base_dir: str) -> tuple[str, ...]:
        """What one rate limit is shared by: the same endpoint and model, whatever the alias."""
        return (self.provider, base_dir, self.model or alias)

    @classmethod
    def validate_entries(
        cls,
        entries: Mapping[str, ProviderConfig],
        models: Mapping[str, ProviderConfig],
        report: Report,
    ) -> None:
        """Report what is wrong with this provider's ``entries`` of the ``models`` section
        beyond their fields' types (default: a missing ``model:`` when it needs one)."""
        if cls.model_hint is None:
            return
        for alias, entry in entries.items():
            if entry.model is None:
                report(alias, ("model",), f"provider {entry.provider!r} needs `model:`",
                       cls.model_hint)  # fmt: skip

    @abc.abstractmethod
    def build(
        self, alias: str, base_dir: Path, models: Mapping[str, ProviderConfig], member: BuildMember
    ) -> tuple[Provider, Files]:
        """The provider behind ``alias`` and the model files it depends on. Called under the
        registry's lock unless ``builds_members`` (a router builds its candidates itself)."""

    #: ``build`` calls ``member`` (so it runs outside the registry's lock)
    builds_members: ClassVar[bool] = False
