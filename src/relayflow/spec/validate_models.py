"""Checks of the ``models:`` section beyond field types: routers (``provider: router``) name
existing aliases, set what their strategy needs, and do not route back to themselves."""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from pathlib import Path

from relayflow.errors import Problem
from relayflow.schema.file import ModelSpec
from relayflow.schema.yaml_lines import LineMap

#: settings that only a router has
ROUTER_ONLY = (
    "strategy",
    "candidates",
    "threshold",
    "weights",
    "fallbacks",
    "breaker",
    "outcomes",
)
STRATEGIES = ("cascade", "cheapest", "fastest", "most_accurate", "weighted")
#: providers that cannot start without `model:`, and what to write there
_NEEDS_MODEL = {
    "sklearn": "name the model file, e.g. model: model/classifier.joblib",
    "openai": "name the model the endpoint serves, e.g. model: gpt-4o-mini",
}


class _At:
    """Problems at ``models.<alias>.<field>`` lines of one workflow file."""

    def __init__(self, lines: LineMap, file: str) -> None:
        self.lines, self.file = lines, file
        self.problems: list[Problem] = []

    def __call__(
        self, alias: str, path: tuple[str | int, ...], message: str, fix: str = ""
    ) -> None:
        field = ".".join(["models", alias, *(p for p in path if isinstance(p, str))])
        line = self.lines.line_of(("models", alias, *path))
        self.problems.append(Problem(self.file, line, field, message, fix))


def validate_models(models: Mapping[str, ModelSpec], lines: LineMap, file: str) -> list[Problem]:
    """Every problem of the routers in ``models``, and router settings on other providers."""
    at = _At(lines, file)
    for alias, spec in models.items():
        if spec.provider == "router":
            _check_router(alias, spec, models, at)
            continue
        if spec.provider in _NEEDS_MODEL and spec.model is None:
            at(alias, ("model",), f"provider {spec.provider!r} needs `model:`",
               _NEEDS_MODEL[spec.provider])  # fmt: skip
        for name in ROUTER_ONLY:
            if name in spec.model_fields_set:
                at(
                    alias,
                    (name,),
                    f"`{name}` is a router setting, but the provider is {spec.provider!r}",
                    "set provider: router (with candidates and a strategy), or remove it",
                )
    return at.problems + _cycles(models, lines, file)


def _check_router(alias: str, spec: ModelSpec, models: Mapping[str, ModelSpec], at: _At) -> None:
    if spec.strategy is None:
        at(
            alias,
            ("strategy",),
            "a router needs a strategy",
            f"set strategy: {' | '.join(STRATEGIES)}",
        )
    if not spec.candidates:
        at(
            alias,
            ("candidates",),
            "a router needs candidates",
            "list the aliases it picks from, e.g. candidates: [small, big]",
        )
    others = ", ".join(sorted(a for a in models if a != alias)) or "(none: define models first)"
    for key in ("candidates", "fallbacks"):
        names: list[str] = getattr(spec, key)
        seen: set[str] = set()
        for index, name in enumerate(names):
            if name == alias:
                at(alias, (key, index), "a router cannot route to itself", f"use one of: {others}")
            elif name not in models:
                at(alias, (key, index), f"unknown model alias {name!r}", f"use one of: {others}")
            elif name in seen:
                at(alias, (key, index), f"{name!r} is listed twice", "list each alias once")
            seen.add(name)
    overlap = [name for name in spec.fallbacks if name in spec.candidates]
    if overlap:
        at(
            alias,
            ("fallbacks",),
            f"{', '.join(map(repr, overlap))} is already a candidate",
            "a fallback is tried after every candidate failed: name other aliases",
        )
    if spec.strategy == "cascade" and spec.threshold is None:
        at(
            alias,
            ("threshold",),
            "strategy cascade needs a threshold",
            "set threshold: 0.8 (an answer less confident than this goes to the next candidate)",
        )
    if spec.strategy != "cascade" and spec.threshold is not None:
        at(alias, ("threshold",), "threshold applies to strategy cascade only", "remove it")
    if spec.strategy == "weighted":
        _check_weights(alias, spec, at)
    elif spec.weights:
        at(alias, ("weights",), "weights apply to strategy weighted only", "remove them")
    if spec.strategy != "most_accurate" and "outcomes" in spec.model_fields_set:
        at(alias, ("outcomes",), "outcomes apply to strategy most_accurate only", "remove them")
    for name in ("model", "base_url", "api_key_env", "version"):
        if name in spec.model_fields_set:
            at(
                alias,
                (name,),
                f"a router has no `{name}`: its candidates do",
                "set it on the candidate's own entry",
            )


def _check_weights(alias: str, spec: ModelSpec, at: _At) -> None:
    missing = [name for name in spec.candidates if name not in spec.weights]
    extra = [name for name in spec.weights if name not in spec.candidates]
    if missing:
        at(
            alias,
            ("weights",),
            f"no weight for {', '.join(map(repr, missing))}",
            "give every candidate a weight, e.g. weights: {small: 3, big: 1}",
        )
    for name in extra:
        at(alias, ("weights", name), f"{name!r} is not a candidate", "weigh the candidates only")
    for name, weight in spec.weights.items():
        if weight < 0:
            at(alias, ("weights", name), "a weight cannot be negative", "use 0 or more")
    if not missing and spec.weights and sum(max(w, 0.0) for w in spec.weights.values()) <= 0:
        at(
            alias,
            ("weights",),
            "every weight is 0",
            "give at least one candidate a positive weight",
        )


def _cycles(models: Mapping[str, ModelSpec], lines: LineMap, file: str) -> list[Problem]:
    """One problem per routing cycle (a router reaching itself through other routers), at the
    first router of the cycle in file order. A router naming itself is reported apart."""
    order = {alias: index for index, alias in enumerate(models)}
    graph = {
        alias: {
            name
            for name in (*spec.candidates, *spec.fallbacks)
            if name in models and name != alias and models[name].provider == "router"
        }
        for alias, spec in models.items()
        if spec.provider == "router"
    }
    problems: list[Problem] = []
    while True:
        try:
            graphlib.TopologicalSorter(graph).prepare()
            return problems
        except graphlib.CycleError as exc:
            cycle: list[str] = list(reversed(exc.args[1]))[:-1]
            start = min(range(len(cycle)), key=lambda k: order[cycle[k]])
            cycle = cycle[start:] + cycle[:start]
            first, second = cycle[0], cycle[1 % len(cycle)]
            spec = models[first]
            key = "candidates" if second in spec.candidates else "fallbacks"
            line = lines.line_of(("models", first, key, getattr(spec, key).index(second)))
            shown = " -> ".join([*cycle, first])
            problems.append(
                Problem(
                    file,
                    line,
                    f"models.{first}.{key}",
                    f"routing cycle: {shown} (each routes to the next)",
                    f"remove {second!r} from {first}'s {key}",
                )
            )
            graph[first].discard(second)  # report each cycle once, then look for another


def model_file_notes(
    models: Mapping[str, ModelSpec], base: Path, lines: LineMap, file: str
) -> list[Problem]:
    """A model file that does not exist yet: a warning, not an error. The file is an artefact
    (a training script or a retrain step writes it), so a workflow is valid before it exists;
    the run stops at once without it, and this says so ahead."""
    from relayflow.spec.validate_files import path_kind, resolve_path

    at = _At(lines, file)
    for alias, spec in models.items():
        if spec.provider in ("llama_cpp", "sklearn") and spec.model is not None:
            path = resolve_path(base, spec.model)
            if path_kind(path) != "file":
                at(alias, ("model",), f"model file {path} does not exist yet",
                   "create it before running (train and save the model there), or fix the "
                   "path (relative to the YAML)")  # fmt: skip
    return at.problems
