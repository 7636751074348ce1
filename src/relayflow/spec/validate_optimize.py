"""Checks of the ``optimize:`` section against the workflow (knobs that its agents and models
have, ranges that hold values, objectives it can measure), and whether the workflow can be
optimized at all: an ``evaluate:`` metric and a dev split to measure it on."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from relayflow.errors import Problem
from relayflow.schema.file import AgentConfig, WorkflowSpec
from relayflow.schema.optimize import OBJECTIVES, OptimizeSpec, Range
from relayflow.schema.problems import did_you_mean
from relayflow.schema.yaml_lines import LineMap, Path_

#: the knobs each agent setting can be, by the setting an agent must have for it
AGENT_KNOBS = ("model", "max_tokens", "compress", "min_confidence")
#: golden records read to find the split, at most
MAX_GOLDEN = 1_000_000


class _Report:
    def __init__(self, file: str, lines: LineMap) -> None:
        self.file, self.lines, self.problems = file, lines, list[Problem]()

    def __call__(self, path: Path_, message: str, fix: str) -> None:
        field = _dotted(path)
        self.problems.append(Problem(self.file, self.lines.line_of(path), field, message, fix))


def _dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def objective_names(spec: WorkflowSpec) -> list[str]:
    """What an objective may be called: the five, and the evaluate metric's own name for
    ``metric`` (``accuracy``, ``f1`` …)."""
    names = list(OBJECTIVES)
    if spec.evaluate is not None and spec.evaluate.metric not in names:
        names.append(spec.evaluate.metric)
    return names


def canonical_objective(spec: WorkflowSpec, name: str) -> str:
    """``metric`` for the evaluate metric's own name; any other name as it is."""
    if spec.evaluate is not None and name == spec.evaluate.metric:
        return "metric"
    return name


def validate_optimize(
    spec: WorkflowSpec, agents: Sequence[AgentConfig], lines: LineMap, file: str, base: Path
) -> list[Problem]:
    """Every problem of ``spec.optimize`` (none when the section is absent)."""
    section = spec.optimize
    if section is None:
        return []
    report = _Report(file, lines)
    _objectives(spec, section, report)
    _agents(spec, section, agents, report)
    _models(spec, section, report)
    _variants(spec, section, report)
    return report.problems + readiness_problems(spec, lines, file, base)


def _objectives(spec: WorkflowSpec, section: OptimizeSpec, report: _Report) -> None:
    known = objective_names(spec)
    seen: set[str] = set()
    for index, name in enumerate(section.objectives):
        path: Path_ = ("optimize", "objectives", index)
        if name not in known:
            report(path, f"unknown objective {name!r}", _choose(name, known))
            continue
        canonical = canonical_objective(spec, name)
        if canonical in seen:
            report(path, f"{name!r} is the same objective as another one", "list it once")
        seen.add(canonical)
    for name in section.constraints:
        if name not in known:
            report(
                ("optimize", "constraints", name),
                f"unknown objective {name!r}",
                _choose(name, known),
            )


def _choose(name: str, known: Sequence[str]) -> str:
    guess = did_you_mean(name, known)
    return f"did you mean `{guess}`?" if guess else f"use one of: {', '.join(known)}"


def _agents(
    spec: WorkflowSpec, section: OptimizeSpec, agents: Sequence[AgentConfig], report: _Report
) -> None:
    by_name = {a.name: a for a in agents}
    for name, knobs in section.search.agents.items():
        base: Path_ = ("optimize", "search", "agents", name)
        agent = by_name.get(name)
        if agent is None:
            report(base, f"unknown agent {name!r}", _choose(name, sorted(by_name)))
            continue
        has = [k for k in AGENT_KNOBS if applicable(agent, k)]
        for knob in AGENT_KNOBS:
            value = getattr(knobs, knob)
            if value is None or value is False:
                continue
            path: Path_ = (*base, knob)
            if knob not in has:
                own = f"its knobs: {', '.join(has)}" if has else "it has none"
                report(
                    path,
                    f"{name} ({agent.type}) has no {knob} knob",
                    f"remove it ({own})",
                )
                continue
            _values(path, knob, value, report)
            if knob == "model" and isinstance(value, list):
                for index, alias in enumerate(value):
                    why = compatible(spec, agent, alias)
                    if why is not None:
                        report((*path, index), why[0], why[1])


def _values(path: Path_, knob: str, value: Any, report: _Report) -> None:
    """A range that holds values, choices that are not empty, values the setting accepts."""
    if isinstance(value, Range):
        if value.low > value.high:
            report(
                path,
                f"empty range: low {value.low:g} is above high {value.high:g}",
                "swap them, or give low <= high",
            )
        elif value.low == value.high:
            report(
                path,
                f"the range holds one value ({value.low:g}): nothing to search",
                "widen it, or set the value in the workflow and write `false`",
            )
        if value.log and value.low <= 0:
            report(path, "a log range must start above 0", "raise low, or drop `log: true`")
        bounds = _bounds(knob)
        if bounds is not None and (value.low < bounds[0] or value.high > bounds[1]):
            report(
                path,
                f"{knob} must be within {bounds[0]:g} … {bounds[1]:g}",
                f"keep low and high within {bounds[0]:g} … {bounds[1]:g}",
            )
        return
    if isinstance(value, list):
        if not value:
            report(
                path, "no choices: the list is empty", "list at least two values, or write `false`"
            )
            return
        if len({repr(v) for v in value}) < 2:
            report(path, "one choice: nothing to search", "list at least two values")
        bounds = _bounds(knob)
        for index, item in enumerate(value):
            wrong = _bad_choice(knob, item, bounds)
            if wrong is not None:
                report((*path, index), wrong[0], wrong[1])


def _bounds(knob: str) -> tuple[float, float] | None:
    if knob == "min_confidence":
        return (0.0, 1.0)
    if knob in ("max_tokens", "compress"):
        return (1.0, float("inf"))
    return None


def _bad_choice(knob: str, item: Any, bounds: tuple[float, float] | None) -> tuple[str, str] | None:
    if knob == "model":
        return (
            None
            if isinstance(item, str)
            else (f"{item!r} is not a model alias", "write an alias of models:")
        )
    if knob == "compress" and item is None:
        return None  # no compression
    number = isinstance(item, int | float) and not isinstance(item, bool)
    if knob in ("max_tokens", "compress") and not (number and float(item).is_integer()):
        return f"{item!r} is not a whole number of tokens", "write a count such as 64"
    if not number:
        return f"{item!r} is not a number", "write a number"
    if bounds is not None and not bounds[0] <= float(item) <= bounds[1]:
        return f"{item!r} is out of range", f"use a value within {bounds[0]:g} … {bounds[1]:g}"
    return None


def _models(spec: WorkflowSpec, section: OptimizeSpec, report: _Report) -> None:
    from relayflow.providers.router_config import RouterConfig

    for alias, knobs in section.search.models.items():
        path: Path_ = ("optimize", "search", "models", alias)
        entry = spec.models.get(alias)
        if entry is None:
            report(path, f"unknown model alias {alias!r}", _choose(alias, sorted(spec.models)))
            continue
        if not isinstance(entry, RouterConfig) or entry.strategy != "cascade":
            report(
                path,
                f"{alias!r} is not a cascade router: it has no threshold or order",
                "name a `provider: router` entry with `strategy: cascade`",
            )
            continue
        if knobs.threshold is not None and knobs.threshold is not False:
            _values((*path, "threshold"), "min_confidence", knobs.threshold, report)


def _variants(spec: WorkflowSpec, section: OptimizeSpec, report: _Report) -> None:
    chosen = section.search.variants
    names = [v.name for v in spec.variants]
    path: Path_ = ("optimize", "search", "variants")
    if chosen is True and len(names) < 2:
        report(
            path,
            "the workflow has fewer than two variants to choose from",
            "add `variants:` (prompt variants), or remove this knob",
        )
    if isinstance(chosen, list):
        for index, name in enumerate(chosen):
            if name not in names:
                fix = _choose(str(name), names) if names else "add a `variants:` section first"
                report((*path, index), f"unknown variant {name!r}", fix)
        if len(set(chosen)) < 2:
            report(path, "fewer than two variants: nothing to search", "list at least two")


def applicable(agent: AgentConfig, setting: str) -> bool:
    """Whether knob ``setting`` can vary ``agent`` (its type has the setting, and it matters).
    A review step's ``when: confidence < 0.7`` is its escalation threshold (min_confidence)."""
    if setting == "min_confidence" and confidence_gate(agent) is not None:
        return True
    return hasattr(agent, setting) and _applies(agent, setting)


#: a review gate that is only a confidence threshold: ``confidence < 0.7``
_GATE = re.compile(r"^\s*confidence\s*(<=?)\s*((?:\d+\.?\d*|\.\d+))\s*$")


def confidence_gate(agent: AgentConfig) -> tuple[str, float] | None:
    """``("<", 0.7)`` for a step whose ``when:`` is ``confidence < 0.7``; None otherwise."""
    when = getattr(agent, "when", None)
    found = _GATE.match(when) if isinstance(when, str) else None
    return (found.group(1), float(found.group(2))) if found else None


def _applies(agent: AgentConfig, setting: str) -> bool:
    features = getattr(agent, "features", None)
    if setting == "max_tokens":
        # a tabular model answers no tokens; a label is scored, not generated at length
        return features is None and getattr(agent, "output", None) in ("text", "json")
    if setting == "compress":
        return features is None
    if setting == "min_confidence":
        # only a check that escalates trades people's time for accuracy; one that fails or
        # retries below the threshold only loses items
        return getattr(agent, "on_failure", None) == "escalate"
    return True


def compatible_aliases(spec: WorkflowSpec, agent: AgentConfig) -> list[str]:
    """The aliases of ``models:`` that can answer ``agent``: tabular ones for a step with
    ``features:``, text ones (routers and learned models included) for a prompt; its own
    alias first."""
    own = getattr(agent, "model", None)
    wanted = "tabular" if getattr(agent, "features", None) is not None else "text"
    fits = [alias for alias, entry in spec.models.items() if wanted in entry.serves()]
    if isinstance(own, str):
        fits = [own, *[a for a in fits if a != own]]
    return fits


def compatible(spec: WorkflowSpec, agent: AgentConfig, alias: str) -> tuple[str, str] | None:
    """Why ``alias`` cannot answer ``agent`` (message, fix), or None when it can."""
    if alias not in spec.models:
        return f"unknown model alias {alias!r}", _choose(alias, sorted(spec.models))
    if alias not in compatible_aliases(spec, agent):
        kind = "tabular" if getattr(agent, "features", None) is not None else "text"
        return (
            f"{alias!r} cannot answer a {kind} step",
            f"use one of: {', '.join(compatible_aliases(spec, agent))}",
        )
    return None


def readiness_problems(spec: WorkflowSpec, lines: LineMap, file: str, base: Path) -> list[Problem]:
    """Why the workflow cannot be optimized: no ``evaluate:`` metric, or no dev split of the
    items to measure it on (a golden set whose records say ``split: dev|holdout``, or
    ``optimize.split.holdout: SHARE``)."""
    report = _Report(file, lines)
    at: Path_ = ("optimize",) if spec.optimize is not None else ()
    if spec.evaluate is None:
        report(
            at or ("evaluate",),
            "the workflow has no evaluate: section, so there is nothing to optimize for",
            "add `evaluate: {metric: accuracy, golden: golden.jsonl}` (or a reference "
            "the items carry)",
        )
        return report.problems
    split = spec.optimize.split if spec.optimize is not None else None
    if split is not None and split.holdout is not None:
        return []
    field = split.field if split is not None else "split"
    dev = split.dev if split is not None else "dev"
    holdout = split.holdout_label if split is not None else "holdout"
    hint = "or add `optimize: {split: {holdout: 0.3}}` to hold out a share of the items by key"
    if spec.evaluate.golden is None:
        report(
            ("evaluate",),
            "no dev split: the references travel with the items and no "
            "golden set says which items are dev and which holdout",
            f"name a golden set whose records carry `{field}: {dev}|{holdout}`, {hint}",
        )
        return report.problems
    counts = golden_splits(base / spec.evaluate.golden, field)
    if counts is None:
        return []  # a missing or unreadable golden set is reported by evaluate's own check
    path: Path_ = ("evaluate", "golden")
    if counts[dev] == 0:
        report(
            path,
            f"no dev split: no golden record has `{field}: {dev}`",
            f"mark the records that tune settings `{field}: {dev}` (and the rest "
            f"`{field}: {holdout}`), {hint}",
        )
    elif counts[holdout] == 0:
        report(
            path,
            f"no holdout split: no golden record has `{field}: {holdout}`",
            f"mark some records `{field}: {holdout}` to confirm the chosen settings on, {hint}",
        )
    return report.problems


def golden_splits(path: Path, field: str) -> Counter[str] | None:
    """How many golden records carry each value of ``field``; None when it cannot be read."""
    from relayflow.agents.formats import READERS, format_of

    if not path.is_file():
        return None
    counts: Counter[str] = Counter()
    try:
        reader = READERS[format_of(str(path), None)]
        with open(path, "rb") as raw:
            for number, record in enumerate(reader(raw, str(path))):
                if number >= MAX_GOLDEN:
                    break
                if isinstance(record, dict) and record.get(field) is not None:
                    counts[str(record[field])] += 1
    except Exception:  # noqa: BLE001 - any unreadable golden set is evaluate's own problem
        return None
    return counts
