"""The search space of ``relayflow optimize``: the knobs of a workflow (named in its ``optimize:``
section, or derived from what it declares) and the workflow that one setting of them runs as.

A knob is one setting that may vary: the prompt variant (``variants:``), an inference step's
model alias, ``max_tokens`` and compression budget, a quality check's escalation threshold,
a cascade router's threshold and candidate order. Few-shot examples are not a setting of a
workflow (the prompt retraining job writes them into a prompt version), so there is no few-shot
knob; a human review's ``when:`` is an expression, not a number, and stays as written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from relayflow.schema.optimize import AgentKnobs, Range, RouterKnobs, SearchSpec
from relayflow.spec.validate_optimize import applicable, compatible_aliases, confidence_gate

if TYPE_CHECKING:
    from relayflow.providers.base import ProviderConfig
    from relayflow.schema.file import AgentConfig
    from relayflow.schema.workflow import Workflow

#: the variant knob's name
VARIANT = "variant"
#: the most candidates whose every order is tried (4! = 24 orders)
MAX_ORDERED = 4
#: joins the aliases of a candidate order in its choice (``small>large``)
ORDER_SEP = ">"

Where = Literal["variant", "agent", "model"]


@dataclass(frozen=True, slots=True)
class Knob:
    """One setting to search: ``choices`` (categorical), or an int/float range."""

    name: str
    where: Where
    owner: str  # the agent's name or the model alias ("" for the variant)
    setting: str
    kind: Literal["choice", "int", "float"]
    baseline: Any
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False

    def holds(self, value: Any) -> bool:
        """Whether ``value`` is one of the knob's values (the baseline may not be)."""
        if self.kind == "choice":
            return value in self.choices
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        return self.low <= value <= self.high

    def describe(self) -> str:
        if self.kind == "choice":
            return ", ".join("off" if c is None else str(c) for c in self.choices)
        step = f" step {self.step:g}" if self.step else ""
        return f"{self.low:g} … {self.high:g}{step}{' (log)' if self.log else ''}"


@dataclass(frozen=True, slots=True)
class Space:
    knobs: tuple[Knob, ...]

    def baseline(self) -> dict[str, Any]:
        return {k.name: k.baseline for k in self.knobs}

    def __len__(self) -> int:
        return len(self.knobs)


# ---- the knobs ---------------------------------------------------------------------------------


def search_space(workflow: Workflow) -> Space:
    """The knobs of ``workflow``: those its ``optimize.search`` names, and (unless it says
    ``derive: false``) those derived from its steps for every knob it leaves unnamed."""
    section = workflow.spec.optimize
    search = section.search if section is not None else SearchSpec()
    knobs: list[Knob] = []
    variant = _variant_knob(workflow, search.variants, search.derive)
    if variant is not None:
        knobs.append(variant)
    for agent in workflow.agents:
        named = search.agents.get(agent.name, AgentKnobs())
        knobs.extend(_agent_knobs(workflow, agent, named, search.derive))
    for alias in _routers_in_use(workflow):
        named_router = search.models.get(alias, RouterKnobs())
        knobs.extend(_router_knobs(workflow, alias, named_router, search.derive))
    return Space(tuple(knobs))


def _variant_knob(
    workflow: Workflow, written: bool | list[str] | None, derive: bool
) -> Knob | None:
    names = [v.name for v in workflow.spec.variants]
    if written is False or (written is None and not derive) or len(names) < 2:
        return None
    choices = names if written is None or written is True else list(written)
    return Knob(VARIANT, "variant", "", "variant", "choice", names[0], tuple(choices))


def _agent_knobs(
    workflow: Workflow, agent: AgentConfig, named: AgentKnobs, derive: bool
) -> list[Knob]:
    out: list[Knob] = []
    for setting in ("model", "max_tokens", "compress", "min_confidence"):
        written = getattr(named, setting)
        if written is False or (written is None and not derive):
            continue
        if not applicable(agent, setting):
            continue
        baseline = _agent_baseline(agent, setting)
        derived = _derived_agent(workflow, agent, setting, baseline)
        knob = _knob(
            f"{agent.name}.{setting}", "agent", agent.name, setting, baseline, written, derived
        )
        if knob is not None:
            out.append(knob)
    return out


def _agent_baseline(agent: AgentConfig, setting: str) -> Any:
    gate = confidence_gate(agent) if setting == "min_confidence" else None
    if gate is not None:
        return gate[1]
    value = getattr(agent, setting)
    if setting == "compress":
        return None if value is None else value.max_tokens
    return value


def _derived_agent(
    workflow: Workflow, agent: AgentConfig, setting: str, baseline: Any
) -> Range | list[Any] | None:
    """The values a knob takes when the section does not list them; None: nothing to vary."""
    if setting == "model":
        choices = compatible_aliases(workflow.spec, agent)
        return choices if len(choices) > 1 else None
    if setting == "max_tokens":
        low, high = max(1, int(baseline) // 2), max(2, int(baseline) * 2)
        return Range(low=low, high=high, log=True)
    if setting == "compress":
        if baseline is None:
            return None  # compressing needs a query and fields chosen by the author
        budget = int(baseline)
        return sorted({max(1, budget // 2), budget, budget * 2}) + [None]
    if setting == "min_confidence":
        return Range(low=0.0, high=0.99, step=0.01)
    return None


def _routers_in_use(workflow: Workflow) -> list[str]:
    """Cascade routers that an agent's model is, or that one of its model choices is."""
    from relayflow.providers.router_config import RouterConfig

    models = workflow.spec.models
    used: list[str] = []
    for agent in workflow.agents:
        own = getattr(agent, "model", None)
        if not isinstance(own, str):
            continue
        for alias in [own, *compatible_aliases(workflow.spec, agent)]:
            entry = models.get(alias)
            if (
                isinstance(entry, RouterConfig)
                and entry.strategy == "cascade"
                and alias not in used
            ):
                used.append(alias)
    return used


def _router_knobs(workflow: Workflow, alias: str, named: RouterKnobs, derive: bool) -> list[Knob]:
    from relayflow.providers.router_config import RouterConfig

    entry = workflow.spec.models[alias]
    assert isinstance(entry, RouterConfig)  # noqa: S101 - _routers_in_use picked routers only
    out: list[Knob] = []
    threshold = named.threshold
    if threshold is not False and (threshold is not None or derive):
        baseline = entry.threshold if entry.threshold is not None else 0.0
        knob = _knob(
            f"models.{alias}.threshold",
            "model",
            alias,
            "threshold",
            baseline,
            threshold,
            Range(low=0.0, high=0.99, step=0.01),
        )
        if knob is not None:
            out.append(knob)
    order = named.order if named.order is not None else derive
    if order and 2 <= len(entry.candidates) <= MAX_ORDERED:
        orders = [ORDER_SEP.join(p) for p in itertools.permutations(entry.candidates)]
        out.append(
            Knob(
                f"models.{alias}.order", "model", alias, "order", "choice", orders[0], tuple(orders)
            )
        )
    return out


def _knob(
    name: str,
    where: Where,
    owner: str,
    setting: str,
    baseline: Any,
    written: bool | Range | list[Any] | None,
    derived: Range | list[Any] | None,
) -> Knob | None:
    values = derived if written is None or written is True else written
    if values is None or isinstance(values, bool):
        return None
    if isinstance(values, list):
        choices = tuple(values)
        if len(set(map(_hashable, choices))) < 2:
            return None
        return Knob(name, where, owner, setting, "choice", baseline, choices)
    integer = setting in ("max_tokens", "compress")
    kind: Literal["int", "float"] = "int" if integer else "float"
    if values.low == values.high:
        return None
    return Knob(
        name,
        where,
        owner,
        setting,
        kind,
        baseline,
        (),
        values.low,
        values.high,
        values.step,
        values.log,
    )


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, default=str)


# ---- one setting of the knobs as a workflow --------------------------------------------------


def configured(workflow: Workflow, values: Mapping[str, Any], space: Space) -> Workflow:
    """The workflow that ``values`` (knob name -> value) runs as: its variant, then each
    agent's and each router's settings replaced. Its version hashes the settings too."""
    from relayflow.spec.variants import apply_overrides, variant_workflow

    knobs = {k.name: k for k in space.knobs}
    result = workflow
    variant = values.get(VARIANT)
    if variant is not None:
        result = variant_workflow(workflow, str(variant))
    agents = agent_overrides(values, knobs, result.agents)
    models = model_overrides(result, values, knobs)
    changed = tuple(
        apply_overrides(a, agents[a.name]) if a.name in agents else a for a in result.agents
    )
    spec = result.spec
    if models:
        spec = spec.model_copy(update={"models": _attached({**spec.models, **models})})
    digest = json.dumps(dict(values), sort_keys=True, default=str)
    version = hashlib.sha256(f"{result.version}\n{digest}".encode()).hexdigest()[:12]
    return dataclasses.replace(result, agents=changed, spec=spec, version=version)


def agent_overrides(
    values: Mapping[str, Any], knobs: Mapping[str, Knob], agents: Sequence[AgentConfig] = ()
) -> dict[str, dict[str, Any]]:
    """``{agent: {setting: value}}`` of the agent knobs in ``values``, as a variant writes them
    (compression as the agent's whole ``compress:`` with the new budget, or null)."""
    by_name = {a.name: a for a in agents}
    out: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        knob = knobs.get(name)
        if knob is None or knob.where != "agent":
            continue
        setting: Any = value
        if knob.setting == "compress":
            setting = _compress_value(by_name.get(knob.owner), value)
        elif knob.setting == "max_tokens":
            setting = int(value)
        agent = by_name.get(knob.owner)
        gate = (
            confidence_gate(agent)
            if agent is not None and knob.setting == "min_confidence"
            else None
        )
        if gate is not None:
            out.setdefault(knob.owner, {})["when"] = f"confidence {gate[0]} {float(value):g}"
            continue
        out.setdefault(knob.owner, {})[knob.setting] = setting
    return out


def _compress_value(agent: AgentConfig | None, budget: Any) -> Any:
    if budget is None:
        return None
    current = getattr(agent, "compress", None) if agent is not None else None
    written = current.model_dump(mode="json", exclude_defaults=True) if current is not None else {}
    return {**written, "max_tokens": int(budget)}


def model_overrides(
    workflow: Workflow, values: Mapping[str, Any], knobs: Mapping[str, Knob]
) -> dict[str, ProviderConfig]:
    """The ``models:`` entries that ``values`` change, as new entries."""
    updates: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        knob = knobs.get(name)
        if knob is None or knob.where != "model":
            continue
        if knob.setting == "order":
            updates.setdefault(knob.owner, {})["candidates"] = str(value).split(ORDER_SEP)
        else:
            updates.setdefault(knob.owner, {})[knob.setting] = float(value)
    return {
        alias: workflow.spec.models[alias].model_copy(update=update)
        for alias, update in updates.items()
    }


def _attached(models: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
    """Copies of ``models``' entries that resolve their routes in the new section (the
    originals stay attached to the workflow as written)."""
    copies = {alias: entry.model_copy() for alias, entry in models.items()}
    for entry in copies.values():
        entry.in_section(copies)
    return copies
