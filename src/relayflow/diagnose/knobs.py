"""The settings of each step that ``relayflow optimize`` searches, and the objectives each acts
on: one map from a step's type and configuration to its knobs, for the diagnosis and the
optimizer alike."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from relayflow.agents.inference_config import InferenceConfig
    from relayflow.providers.base import ProviderConfig
    from relayflow.schema.file import AgentConfig
    from relayflow.schema.workflow import Workflow

Objective = Literal["failures", "wrong", "escalations", "ttr", "cost"]
#: every objective, in the order the bottleneck rule considers them (diagnose/bottleneck.py)
OBJECTIVES: tuple[Objective, ...] = ("failures", "wrong", "escalations", "ttr", "cost")
#: what each objective is called in tables and reports
OBJECTIVE_NAMES: Mapping[Objective, str] = {
    "failures": "failures",
    "wrong": "wrong answers",
    "escalations": "escalations",
    "ttr": "TTR",
    "cost": "cost",
}

#: the escalation thresholds an optimizer searches when the workflow gives no range
THRESHOLD_RANGE = (0.5, 0.95)

#: ``confidence < 0.8`` (or ``<=``) inside a human_review step's ``when:``
_CONFIDENCE_BELOW = re.compile(r"\bconfidence\s*<=?\s*(\d*\.?\d+)")

KnobKind = Literal[
    "model",
    "cascade",
    "learned",
    "prompt",
    "max_tokens",
    "compress",
    "escalation_threshold",
    "cache",
]


@dataclass(frozen=True, slots=True)
class Knob:
    """One setting the optimizer may change for a step: where it is in the workflow file,
    its value now, what would be tried, and the objectives it moves."""

    kind: KnobKind
    step: str
    #: where the setting lives, as a path into the YAML (``Classify.max_tokens``)
    setting: str
    current: str
    tries: str
    acts_on: frozenset[Objective]

    def moves(self, objective: Objective) -> bool:
        return objective in self.acts_on


def workflow_knobs(workflow: Workflow) -> dict[str, tuple[Knob, ...]]:
    """Every step's knobs, by step name, in the workflow's order."""
    return {agent.name: step_knobs(workflow, agent) for agent in workflow.agents}


def step_knobs(workflow: Workflow, agent: AgentConfig) -> tuple[Knob, ...]:
    """The knobs of one step, from its type and configuration."""
    from relayflow.agents.human_review import HumanReviewConfig
    from relayflow.agents.inference_config import InferenceConfig
    from relayflow.agents.quality_check import QualityCheckConfig

    knobs: list[Knob] = []
    if isinstance(agent, InferenceConfig):
        knobs.extend(_inference(workflow, agent))
    elif isinstance(agent, QualityCheckConfig):
        knobs.extend(_quality_check(agent))
    elif isinstance(agent, HumanReviewConfig):
        knobs.append(_human_review(agent))
    cache = _cache(workflow, agent)
    if cache is not None:
        knobs.append(cache)
    return tuple(knobs)


def _inference(workflow: Workflow, agent: InferenceConfig) -> list[Knob]:
    name = agent.name
    models = workflow.spec.models
    entry = models.get(agent.model)
    every: frozenset[Objective] = frozenset(OBJECTIVES)
    knobs = [_model(name, agent.model, models, every)]
    cascade = _cascade(name, agent.model, entry, every)
    if cascade is not None:
        knobs.append(cascade)
    if agent.output == "label" or agent.features is not None:
        knobs.append(
            Knob(
                "learned",
                name,
                f"{name}.model",
                "none",
                "a model fitted from the reviews and labels the store holds for this step "
                f"(provider: learned), first in a cascade before {agent.model}: it answers what "
                "it is sure of and passes the rest on",
                frozenset({"ttr", "cost", "escalations", "wrong"}),
            )
        )
    if agent.features is None:
        knobs.append(_prompt(workflow, agent))
        knobs.append(_max_tokens(agent))
        knobs.append(_compress(agent))
    return knobs


def _model(
    step: str, alias: str, models: Mapping[str, ProviderConfig], every: frozenset[Objective]
) -> Knob:
    others = [a for a in models if a != alias]
    if others:
        tries = "the other aliases under models: " + ", ".join(others)
    else:
        tries = "another model: declare a smaller or a larger one under models: to compare"
    provider = getattr(models.get(alias), "provider", None)
    current = f"{alias} ({provider})" if provider else f"{alias} (the embedded local model)"
    return Knob("model", step, f"{step}.model", current, tries, every)


def _cascade(
    step: str, alias: str, entry: ProviderConfig | None, every: frozenset[Objective]
) -> Knob | None:
    """The threshold and order of a cascade the step's alias routes through, if it is one (a
    router's settings are read by name, so that no provider class is named here)."""
    candidates = list(getattr(entry, "candidates", None) or [])
    if entry is None or not candidates or getattr(entry, "strategy", None) != "cascade":
        return None
    threshold = getattr(entry, "threshold", None)
    low, high = THRESHOLD_RANGE
    current = f"[{', '.join(candidates)}], threshold {threshold if threshold is not None else '—'}"
    return Knob(
        "cascade",
        step,
        f"models.{alias}.threshold",
        current,
        f"thresholds from {low} to {high} and each order of [{', '.join(candidates)}]",
        every,
    )


def _prompt(workflow: Workflow, agent: InferenceConfig) -> Knob:
    fields = ("prompt", "prompt_template", "system")
    variants = [
        v.name
        for v in workflow.spec.variants
        if any(f in v.agents.get(agent.name, {}) for f in fields)
    ]
    if variants:
        tries = "the prompts of the variants " + ", ".join(variants)
    else:
        tries = (
            "prompt variants: add entries under variants: that give this step another "
            "prompt_template (more examples, a stricter instruction)"
        )
    current = agent.prompt_template or "an inline prompt"
    setting = f"{agent.name}.{'prompt_template' if agent.prompt_template else 'prompt'}"
    return Knob(
        "prompt",
        agent.name,
        setting,
        current,
        tries,
        frozenset({"wrong", "escalations", "failures"}),
    )


def _max_tokens(agent: InferenceConfig) -> Knob:
    now = agent.max_tokens
    if agent.output == "label":
        tries = f"fewer tokens (a label is short): from {max(1, now // 4)} to {now}"
    else:
        tries = f"from {max(1, now // 2)} to {now * 2}: fewer is faster, too few cuts answers short"
    return Knob(
        "max_tokens",
        agent.name,
        f"{agent.name}.max_tokens",
        str(now),
        tries,
        frozenset({"ttr", "cost", "wrong", "failures"}),
    )


def _compress(agent: InferenceConfig) -> Knob:
    spec = agent.compress
    if spec is None:
        current = "off"
        tries = "compress: {method: extractive, max_tokens: …} on the long fields of the prompt"
    else:
        budget = spec.max_tokens
        current = f"{spec.method}" + (f", max_tokens {budget}" if budget else "")
        if budget:
            tries = f"max_tokens from {max(1, budget // 2)} to {budget * 2}, and method clean"
        else:
            tries = "method extractive with a token budget"
    return Knob(
        "compress",
        agent.name,
        f"{agent.name}.compress",
        current,
        tries,
        frozenset({"ttr", "cost", "wrong"}),
    )


def _quality_check(agent: AgentConfig) -> list[Knob]:
    from relayflow.agents.quality_check import QualityCheckConfig

    assert isinstance(agent, QualityCheckConfig)  # noqa: S101 - narrows the type for mypy: the caller checked it
    low, high = THRESHOLD_RANGE
    acts: frozenset[Objective]
    if agent.on_failure == "escalate":
        acts = frozenset({"escalations", "wrong", "ttr"})
        why = "a lower one sends fewer items to a person, at the risk of more wrong answers"
    elif agent.on_failure == "retry":
        acts = frozenset({"failures", "ttr", "cost"})
        why = "a lower one retries fewer items"
    else:
        acts = frozenset({"failures", "wrong"})
        why = "a lower one fails fewer items"
    return [
        Knob(
            "escalation_threshold",
            agent.name,
            f"{agent.name}.min_confidence",
            f"{agent.min_confidence:g} (on_failure: {agent.on_failure})",
            f"thresholds from {low} to {high}: {why}",
            acts,
        )
    ]


def _human_review(agent: AgentConfig) -> Knob:
    from relayflow.agents.human_review import DEFAULT_MIN_CONFIDENCE, HumanReviewConfig

    assert isinstance(agent, HumanReviewConfig)  # noqa: S101 - narrows the type for mypy: the caller checked it
    low, high = THRESHOLD_RANGE
    acts: frozenset[Objective] = frozenset({"escalations", "wrong", "ttr"})
    setting = f"{agent.name}.when"
    if agent.when is None:
        current = f"flagged items, or confidence < {DEFAULT_MIN_CONFIDENCE:g}"
        tries = f"when: confidence < x, for x from {low} to {high}"
        return Knob("escalation_threshold", agent.name, setting, current, tries, acts)
    found = _CONFIDENCE_BELOW.search(agent.when)
    if found is not None:
        tries = f"the threshold {found.group(1)} in when:, from {low} to {high}"
    else:
        tries = "variants with another when: (this one compares no confidence with a number)"
    return Knob("escalation_threshold", agent.name, setting, agent.when, tries, acts)


def _cache(workflow: Workflow, agent: AgentConfig) -> Knob | None:
    """``cache: true`` for a deterministic step that is not cached now."""
    from relayflow.agents.registry import agent_class
    from relayflow.engine.cache import cache_policy
    from relayflow.errors import RelayflowError

    try:
        kind = agent_class(agent.type)
    except RelayflowError:
        return None
    if not kind.cacheable or not kind.deterministic(agent):
        return None
    if cache_policy(agent, workflow.spec.cache) is not None:
        return None
    return Knob(
        "cache",
        agent.name,
        f"{agent.name}.cache",
        "off",
        "cache: true — the same input gives the same output, so a repeat costs nothing",
        frozenset({"ttr", "cost"}),
    )
