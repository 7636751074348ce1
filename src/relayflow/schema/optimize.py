"""The ``optimize:`` section of a workflow file: what ``relayflow optimize`` may vary (its knobs),
what it measures (objectives and constraints), which items it measures on (the split) and how
much it may spend. Every part is optional: a knob not named is derived from the workflow."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: the objectives a workflow can be optimized for; ``metric`` is the ``evaluate:`` metric after
#: review, ``agent_metric`` the same metric on what the agents answered before any review
OBJECTIVES = ("metric", "agent_metric", "cpw", "ttr", "utilization")
DEFAULT_OBJECTIVES = ("metric", "cpw", "ttr", "utilization")
#: the direction of each objective
MAXIMIZE = frozenset({"metric", "agent_metric", "utilization"})

_BOUND = re.compile(r"^\s*(>=|<=)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    """A numeric range to search: ``{low: 0.5, high: 0.95}``, with an optional ``step`` (a grid)
    and ``log: true`` (sampled on a log scale)."""

    low: float
    high: float
    step: float | None = Field(default=None, gt=0)
    log: bool = False


#: one knob as written: ``true`` (search it, over the range derived from the workflow),
#: ``false`` (leave it as written), a list of choices, or a range
Knob = bool | Range | list[Any]


class AgentKnobs(_Strict):
    """What may vary in one agent. Which knobs an agent type has is checked against the
    workflow (spec/validate_optimize.py): model, max_tokens and compress on inference steps,
    min_confidence on quality checks."""

    #: model aliases of ``models:`` to try (the step's own is always one of them)
    model: Knob | None = None
    #: the most tokens the model may answer with
    max_tokens: Knob | None = None
    #: the quality check's escalation threshold
    min_confidence: Knob | None = None
    #: the token budget of ``compress:`` (``null`` among the choices: no compression)
    compress: Knob | None = None


class RouterKnobs(_Strict):
    """What may vary in a ``provider: router`` entry with ``strategy: cascade``."""

    #: the confidence under which an answer goes on to the next candidate
    threshold: Knob | None = None
    #: try the candidates in every order (true), or only as written (false)
    order: bool | None = None


class SearchSpec(_Strict):
    """The knobs, by where they live: the prompt variants of ``variants:``, each agent's, each
    router's. ``derive: false`` searches only the knobs named here."""

    variants: bool | list[str] | None = None
    agents: dict[str, AgentKnobs] = Field(default_factory=dict)
    models: dict[str, RouterKnobs] = Field(default_factory=dict)
    derive: bool = True


class SplitSpec(_Strict):
    """Which items tune the settings (dev) and which confirm them (holdout). With a golden set
    whose records carry ``field`` (default ``split: dev | holdout``), those records; with
    ``holdout: 0.3`` instead, that share of the items, chosen by a hash of their key (for
    references that travel with the items, or a golden set without the field)."""

    field: str = "split"
    dev: str = "dev"
    holdout_label: str = "holdout"
    holdout: float | None = Field(default=None, gt=0, lt=1)


class Bound(_Strict):
    """A constraint on an objective: ``>= 0.9`` (at least) or ``<= 0.01`` (at most)."""

    op: Literal[">=", "<="]
    value: float

    def holds(self, measured: float | None) -> bool:
        if measured is None:
            return False
        return measured >= self.value if self.op == ">=" else measured <= self.value

    def violation(self, measured: float | None) -> float:
        """How far ``measured`` is on the wrong side (0 when it holds; Optuna's convention)."""
        if measured is None:
            return 1.0
        gap = self.value - measured if self.op == ">=" else measured - self.value
        return max(0.0, gap)

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


class OptimizeSpec(_Strict):
    """The whole ``optimize:`` section."""

    #: what to improve; one objective is searched with TPE, several with NSGA-II
    objectives: list[str] = Field(default_factory=lambda: list(DEFAULT_OBJECTIVES), min_length=1)
    #: ``{metric: ">= 0.9", cpw: "<= 0.01"}``: a point that breaks one is never recommended
    constraints: dict[str, Bound] = Field(default_factory=dict)
    search: SearchSpec = SearchSpec()
    split: SplitSpec = SplitSpec()
    #: settings tried (Optuna trials), the baseline included
    trials: int = Field(default=20, ge=1)
    #: dev items each setting is measured on (at most; the holdout is measured on as many)
    limit: int = Field(default=50, ge=1)
    #: hard budget: fresh model calls, spend (the prices' unit) and wall seconds in all
    max_calls: int | None = Field(default=None, ge=1)
    max_cost: float | None = Field(default=None, gt=0)
    max_time: float | None = Field(default=None, gt=0)
    seed: int = 0

    @field_validator("constraints", mode="before")
    @classmethod
    def _bounds(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out: dict[Any, Any] = {}
        for key, bound in value.items():
            if isinstance(bound, str):
                found = _BOUND.match(bound)
                if found is None:
                    raise ValueError(
                        f"constraint {key}: {bound!r} is not `>= number` or `<= number`"
                    )
                out[key] = {"op": found.group(1), "value": float(found.group(2))}
            else:
                out[key] = bound
        return out

    @model_validator(mode="after")
    def _unique(self) -> OptimizeSpec:
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError("an objective is listed twice: list each once")
        return self
