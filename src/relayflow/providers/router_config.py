"""``provider: router``: an alias that routes each call to one of other aliases of the same
``models:`` section (providers/router.py), its settings and their checks."""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from relayflow.errors import ProviderError
from relayflow.providers.base import (
    BreakerSpec,
    BuildMember,
    Files,
    Provider,
    ProviderConfig,
    Report,
    _Strict,
)

RouterStrategy = Literal["cascade", "cheapest", "fastest", "most_accurate", "weighted"]
STRATEGIES = ("cascade", "cheapest", "fastest", "most_accurate", "weighted")


class OutcomesSpec(_Strict):
    """How ``strategy: most_accurate`` uses the outcomes recorded in the run store (review
    decisions and labels of the answers each candidate gave; providers/outcomes.py): each call
    goes to the candidate with the highest accuracy drawn from its posterior (Thompson
    sampling, providers/router.py), the draws seeded by ``seed`` (default: the router's alias);
    the store is read again at most every ``refresh`` seconds."""

    refresh: float = Field(default=60.0, gt=0)
    seed: int | None = None
    #: no longer used (a candidate used to need this many outcomes to rank): accepted only to
    #: say so, since sampling gives a candidate without outcomes calls of its own
    minimum: int | None = None


class RouterConfig(ProviderConfig):
    """A router over other aliases of its ``models:`` section (``candidates``), picked by
    ``strategy``; see providers/router.py. ``model`` and ``version`` are accepted only to say
    that they belong on the candidates."""

    provider: Literal["router"] = "router"
    strategy: RouterStrategy | None = None
    candidates: list[str] = Field(default_factory=list)
    #: cascade: an answer whose confidence is under this goes on to the next candidate
    threshold: float | None = Field(default=None, ge=0, le=1)
    #: cascade, instead of ``threshold``: one per candidate except the last (whose answer stands)
    thresholds: list[Annotated[float, Field(ge=0, le=1)]] | None = None
    #: weighted: the share of calls per candidate (any positive numbers; normalised)
    weights: dict[str, float] = Field(default_factory=dict)
    #: aliases tried in order when every candidate failed (error, timeout, open breaker)
    fallbacks: list[str] = Field(default_factory=list)
    breaker: BreakerSpec = BreakerSpec()
    #: most_accurate: how recorded outcomes rank the candidates
    outcomes: OutcomesSpec = OutcomesSpec()

    switch_hint: ClassVar[str | None] = (
        "set provider: router (with candidates and a strategy), or remove it"
    )
    builds_members: ClassVar[bool] = True

    def serves(self) -> frozenset[Literal["text", "tabular"]]:
        """What every candidate serves (a cycle or an unknown alias serves nothing)."""
        return _served(self, self.section, frozenset())

    @classmethod
    def validate_entries(
        cls,
        entries: Mapping[str, ProviderConfig],
        models: Mapping[str, ProviderConfig],
        report: Report,
    ) -> None:
        for alias, entry in entries.items():
            assert isinstance(entry, RouterConfig)  # noqa: S101 - narrows the type; the registry pairs each type with its Config
            _check_router(alias, entry, models, report)
        _cycles(models, report)

    def build(
        self, alias: str, base_dir: Path, models: Mapping[str, ProviderConfig], member: BuildMember
    ) -> tuple[Provider, Files]:
        from relayflow.providers import cache
        from relayflow.providers.breaker import breaker_for
        from relayflow.providers.router import Route, RouterProvider

        if self.strategy is None:
            raise ProviderError(f"models.{alias}: a router needs a strategy")
        strategy = self.strategy
        files: list[tuple[str, tuple[int, int]]] = []

        def route(name: str) -> Route:
            config = models.get(name)
            if config is None:
                known = ", ".join(sorted(models)) or "none"
                raise ProviderError(
                    f"models.{alias}: {name!r} is not defined under models: (defined: {known})"
                )
            provider, used = member(name, config)
            files.extend(used)
            breaker = None
            if self.breaker.enabled:
                breaker = breaker_for(
                    f"{name}@{provider.version}",
                    failure_threshold=self.breaker.failures,
                    reset_timeout=self.breaker.reset_after,
                )
            return Route(name, provider, breaker)

        candidates = [route(name) for name in self.candidates]
        fallbacks = [route(name) for name in self.fallbacks]
        # a retrained candidate is a new provider object, and so makes a new router
        key = (
            "router",
            alias,
            self.model_dump_json(),
            tuple(id(r.provider) for r in (*candidates, *fallbacks)),
        )

        def make() -> Provider:
            return RouterProvider(
                alias,
                strategy,
                candidates,
                fallbacks=fallbacks,
                threshold=self.threshold,
                thresholds=self.thresholds,
                weights=self.weights,
                # a per-attempt limit only when the router sets one: candidates have their own
                timeout=self.timeout if "timeout" in self.model_fields_set else None,
                refresh=self.outcomes.refresh,
                seed=self.outcomes.seed,
            )

        return cache.cached(key, make), tuple(files)


def _check_router(
    alias: str, spec: RouterConfig, models: Mapping[str, ProviderConfig], at: Report
) -> None:
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
    _check_thresholds(alias, spec, at)
    if spec.strategy == "weighted":
        _check_weights(alias, spec, at)
    elif spec.weights:
        at(alias, ("weights",), "weights apply to strategy weighted only", "remove them")
    if spec.strategy != "most_accurate" and "outcomes" in spec.model_fields_set:
        at(alias, ("outcomes",), "outcomes apply to strategy most_accurate only", "remove them")
    elif "minimum" in spec.outcomes.model_fields_set:
        at(
            alias,
            ("outcomes", "minimum"),
            "no longer used: most_accurate samples every candidate's accuracy from its "
            "outcomes so far, so a candidate without outcomes gets calls without waiting",
            "remove it",
        )
    for name in ("model", "version"):
        if name in spec.model_fields_set:
            at(
                alias,
                (name,),
                f"a router has no `{name}`: its candidates do",
                "set it on the candidate's own entry",
            )


def _check_thresholds(alias: str, spec: RouterConfig, at: Report) -> None:
    if spec.strategy != "cascade":
        for key in ("threshold", "thresholds"):
            if getattr(spec, key) is not None:
                at(alias, (key,), f"{key} applies to strategy cascade only", "remove it")
        return
    if spec.threshold is None and spec.thresholds is None:
        at(
            alias,
            ("threshold",),
            "strategy cascade needs a threshold",
            "set threshold: 0.8 (an answer less confident than this goes to the next "
            "candidate), or thresholds: with one per candidate except the last",
        )
    elif spec.threshold is not None and spec.thresholds is not None:
        at(
            alias,
            ("thresholds",),
            "set either threshold or thresholds, not both",
            "keep threshold: for one threshold for every candidate, or thresholds: for one each",
        )
    elif spec.thresholds is not None and spec.candidates:
        wanted = len(spec.candidates) - 1
        if len(spec.thresholds) != wanted:
            example = ", ".join(["0.8"] * wanted)
            at(
                alias,
                ("thresholds",),
                f"{len(spec.thresholds)} thresholds for {len(spec.candidates)} candidates: "
                "a cascade has one per candidate except the last (whose answer stands)",
                f"list {wanted}: thresholds: [{example}]",
            )


def _check_weights(alias: str, spec: RouterConfig, at: Report) -> None:
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


def _cycles(models: Mapping[str, ProviderConfig], at: Report) -> None:
    """One problem per routing cycle (a router reaching itself through other routers), at the
    first router of the cycle in file order. A router naming itself is reported apart."""
    order = {alias: index for index, alias in enumerate(models)}
    routers = {alias: s for alias, s in models.items() if isinstance(s, RouterConfig)}
    graph = {
        alias: {
            name
            for name in (*spec.candidates, *spec.fallbacks)
            if name in routers and name != alias
        }
        for alias, spec in routers.items()
    }
    while True:
        try:
            graphlib.TopologicalSorter(graph).prepare()
            return
        except graphlib.CycleError as exc:
            cycle: list[str] = list(reversed(exc.args[1]))[:-1]
            start = min(range(len(cycle)), key=lambda k: order[cycle[k]])
            cycle = cycle[start:] + cycle[:start]
            first, second = cycle[0], cycle[1 % len(cycle)]
            spec = routers[first]
            key = "candidates" if second in spec.candidates else "fallbacks"
            index = getattr(spec, key).index(second)
            shown = " -> ".join([*cycle, first])
            at(first, (key, index), f"routing cycle: {shown} (each routes to the next)",
               f"remove {second!r} from {first}'s {key}")  # fmt: skip
            graph[first].discard(second)  # report each cycle once, then look for another


def _served(
    entry: RouterConfig, models: Mapping[str, ProviderConfig], seen: frozenset[int]
) -> frozenset[Literal["text", "tabular"]]:
    if id(entry) in seen or not entry.candidates:
        return frozenset()
    seen = seen | {id(entry)}
    served: frozenset[Literal["text", "tabular"]] = frozenset({"text", "tabular"})
    for name in entry.candidates:
        candidate = models.get(name)
        if candidate is None:
            return frozenset()
        kinds = (
            _served(candidate, models, seen)
            if isinstance(candidate, RouterConfig)
            else candidate.serves()
        )
        served &= kinds
    return served
