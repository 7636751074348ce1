"""A model alias that routes each call to one of several others (``provider: router``).

Strategies: ``cascade`` (ask the candidates in order until an answer's confidence reaches
``threshold``, or the candidate's own entry of ``thresholds``; the last candidate's answer
stands), ``cheapest`` (lowest expected cost: declared price × recorded tokens), ``fastest``
(lowest latency EWMA), ``most_accurate`` (Thompson sampling on recorded accuracy) and
``weighted`` (a deterministic smooth weighted round-robin). A candidate that fails
(ProviderError, a timeout, an open circuit breaker) or abstains (no label, no text,
confidence 0: a learned model with too few labels) passes the call to the next one in the
strategy's order; ``fallbacks`` are tried when no candidate answered. An abstention is
returned only when nothing answered. Each candidate has a circuit breaker per process.

Metrics are kept per (request type, candidate). The request type is the inference step the
call is for, ``(workflow, step)``, which the agent sets in ``models.context.request_type``;
outside a step it is the shape of the request: for a completion its system prompt, labels,
whether it has an output schema, and max_tokens; for a prediction its feature names. Every
candidate's record is its alias and version, so a retrained model starts afresh.

``most_accurate`` explores: per call it draws each candidate's accuracy from its Beta(1 +
right, 1 + wrong) posterior and asks the highest draw first, then the others by posterior mean.
A candidate without outcomes draws from Beta(1, 1) and so gets some calls; as outcomes come in
the best one gets most of them. The outcomes are those fed in-process (``record_outcome``) plus
those the run store holds for the step (review decisions and labels, providers/outcomes.py),
which the inference agent asks the router to ``watch``. The draws come from one
``random.Random`` per router, seeded with ``seed`` (default: the router's alias), so the same
seed and outcomes give the same choices.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from relayflow.errors import ProviderError
from relayflow.providers.base import (
    Completion,
    CompletionRequest,
    Prediction,
    Price,
    Provider,
    abstained,
)
from relayflow.providers.breaker import CircuitBreaker
from relayflow.providers.context import request_type
from relayflow.providers.outcomes import OutcomeFeed, Tallies

T = TypeVar("T", Completion, Prediction)

#: weight of the newest call in the latency and cost averages
EWMA_ALPHA = 0.2
#: calls a candidate gets for a request type before ``fastest`` trusts its latency
WARMUP_CALLS = 3
#: request types remembered per candidate (a workflow has a handful; this bounds a misuse)
MAX_TYPES = 1024
#: most_accurate: seconds between two reads of the run store's outcomes
REFRESH_SECONDS = 60.0


@dataclass(slots=True)
class CandidateStats:
    """What one candidate did for one request type."""

    calls: int = 0
    errors: int = 0
    latency: float = 0.0  # EWMA of the seconds a call took, seen from the router
    cost: float = 0.0  # EWMA of a call's cost
    input_tokens: float = 0.0  # EWMA
    output_tokens: float = 0.0  # EWMA
    correct: int = 0
    judged: int = 0

    def observe(self, seconds: float, cost: float, input_tokens: int, output_tokens: int) -> None:
        if self.calls == 0:
            self.latency, self.cost = seconds, cost
            self.input_tokens, self.output_tokens = float(input_tokens), float(output_tokens)
        else:
            a = EWMA_ALPHA
            self.latency += a * (seconds - self.latency)
            self.cost += a * (cost - self.cost)
            self.input_tokens += a * (input_tokens - self.input_tokens)
            self.output_tokens += a * (output_tokens - self.output_tokens)
        self.calls += 1


class Metrics:
    """Per-process statistics per (candidate key, request type); the candidate key is
    ``alias@version``, so every router over the same model shares its record."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[str, dict[Hashable, CandidateStats]] = {}

    def get(self, key: str, request_type: Hashable) -> CandidateStats:
        by_type = self._stats.get(key)
        if by_type is None:
            with self._lock:
                by_type = self._stats.setdefault(key, {})
        stats = by_type.get(request_type)
        if stats is None:
            with self._lock:
                if len(by_type) >= MAX_TYPES:
                    by_type.pop(next(iter(by_type)))
                stats = by_type.setdefault(request_type, CandidateStats())
        return stats

    def types(self, key: str) -> list[Hashable]:
        """The request types recorded for candidate ``key``."""
        with self._lock:
            return list(self._stats.get(key, ()))

    def snapshot(self) -> dict[str, list[CandidateStats]]:
        with self._lock:
            return {key: list(by_type.values()) for key, by_type in self._stats.items()}

    def clear(self) -> None:
        with self._lock:
            self._stats.clear()


METRICS = Metrics()


@dataclass(frozen=True, slots=True, eq=False)
class Route:
    """A candidate as the router calls it; ``key`` names its metrics (``alias@version``)."""

    alias: str
    provider: Provider
    breaker: CircuitBreaker | None
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", f"{self.alias}@{self.provider.version}")


class RouterProvider:
    """A Provider over ``candidates`` (and ``fallbacks``), chosen per call by ``strategy``.

    ``version`` hashes the strategy, its settings and every candidate's version, so the step
    cache and the lineage change when any of them does. ``price`` is the first candidate's
    (what a call costs when nothing escalates); each answer carries its exact ``cost`` (every
    call made, at each model's own price), its ``calls`` and, in ``model``, the candidate that
    answered as ``alias=version``."""

    #: tells the inference agent to record ``versions.answered_by`` (the answer's ``model``)
    routes: ClassVar[bool] = True
    _order: Callable[[Hashable, CompletionRequest | None], Sequence[Route]]

    def __init__(
        self,
        name: str,
        strategy: str,
        candidates: Sequence[Route],
        *,
        fallbacks: Sequence[Route] = (),
        threshold: float | None = None,
        thresholds: Sequence[float] | None = None,
        weights: Mapping[str, float] | None = None,
        timeout: float | None = None,
        metrics: Metrics = METRICS,
        refresh: float = REFRESH_SECONDS,
        seed: int | str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not candidates:
            raise ProviderError(f"models.{name}: a router needs at least one candidate")
        if strategy == "cascade" and threshold is None and thresholds is None:
            raise ProviderError(f"models.{name}: strategy cascade needs a threshold")
        if thresholds is not None and len(thresholds) != len(candidates) - 1:
            raise ProviderError(
                f"models.{name}: {len(thresholds)} thresholds for {len(candidates)} candidates "
                "— give one per candidate except the last"
            )
        self.name = name
        self.strategy = strategy
        self.candidates = tuple(candidates)
        self.fallbacks = tuple(fallbacks)
        self.threshold = threshold
        #: cascade: the confidence the answer of candidate i needs to stop there (none for
        #: the last candidate: its answer stands)
        self.thresholds: tuple[float, ...] = (
            tuple(thresholds)
            if thresholds is not None
            else (threshold or 0.0,) * (len(self.candidates) - 1)
        )
        self.timeout = timeout
        self.metrics = metrics
        self.refresh = refresh
        #: most_accurate's draws (a str seed is hashed by random, the same in every process)
        self._rng = random.Random(name if seed is None else seed)  # noqa: S311 - routing, no secret
        self._rng_lock = threading.Lock()
        self._clock = clock
        #: the run stores' outcomes: one feed per store URL, and the feed of each request type
        self._feeds: dict[str, OutcomeFeed] = {}
        self._feed_of: dict[Hashable, OutcomeFeed] = {}
        self.price: Price = self.candidates[0].provider.price
        self._weights = [float((weights or {}).get(r.alias, 1.0)) for r in self.candidates]
        if strategy == "weighted" and sum(w for w in self._weights if w > 0) <= 0:
            raise ProviderError(f"models.{name}: weighted needs a positive weight")
        self._current = [0.0] * len(self.candidates)  # smooth weighted round-robin state
        self._wrr_lock = threading.Lock()
        settings: dict[str, Any] = {
            "strategy": strategy,
            "threshold": threshold,
            "weights": self._weights if strategy == "weighted" else None,
            "candidates": [[r.alias, r.provider.version] for r in self.candidates],
            "fallbacks": [[r.alias, r.provider.version] for r in self.fallbacks],
        }
        if thresholds is not None:  # only when set: the versions of existing routers stay
            settings["thresholds"] = list(thresholds)
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
        self.version = f"router:{strategy}@{digest[:12]}"
        self._order = {
            "cascade": self._declared,
            "cheapest": self._cheapest,
            "fastest": self._fastest,
            "most_accurate": self._most_accurate,
            "weighted": self._weighted,
        }[strategy]

    def __repr__(self) -> str:
        names = ", ".join(r.alias for r in self.candidates)
        return f"RouterProvider({self.name!r}, {self.strategy}, [{names}])"

    # ---- the Provider protocol --------------------------------------------------------------

    async def complete(self, request: CompletionRequest) -> Completion:
        kind: Hashable = request_type.get() or (
            "complete",
            request.system,
            tuple(request.labels or ()),
            request.json_schema is not None,
            request.max_tokens,
        )
        return await self._route(kind, request, lambda p: p.complete(request), _completion_usage)

    async def predict(self, features: Mapping[str, Any]) -> Prediction:
        kind: Hashable = request_type.get() or ("predict", tuple(features))
        return await self._route(kind, None, lambda p: p.predict(features), _prediction_usage)

    async def close(self) -> None:
        # the candidates are shared providers of the registry; close_all closes them
        for feed in self._feeds.values():
            feed.close()

    # ---- outcomes ---------------------------------------------------------------------------

    async def watch(self, store_url: str, workflow: str, step: str, field: str) -> None:
        """Rank on the outcomes that the store at ``store_url`` holds for ``step`` of
        ``workflow`` (its answer in ``field``): read now, then again at most every
        ``refresh`` seconds. Only ``most_accurate`` reads them; other strategies ignore this."""
        if self.strategy != "most_accurate":
            return
        feed = self._feeds.get(store_url)
        if feed is None:
            feed = OutcomeFeed(store_url, refresh=self.refresh, clock=self._clock)
            self._feeds[store_url] = feed
        feed.watch(workflow, step, field)
        self._feed_of[(workflow, step)] = feed
        await feed.load()

    def record_outcome(
        self, alias: str, correct: bool, request_type: Hashable | None = None
    ) -> None:
        """Feed back whether ``alias``'s answer was right (a review decision, a golden check):
        ``most_accurate`` ranks on these. ``request_type=None`` counts for every type seen."""
        route = next((r for r in (*self.candidates, *self.fallbacks) if r.alias == alias), None)
        if route is None:
            raise ProviderError(f"models.{self.name}: {alias!r} is not one of its candidates")
        types = [request_type] if request_type is not None else self._types(route)
        for kind in types:
            stats = self.metrics.get(route.key, kind)
            stats.judged += 1
            stats.correct += int(correct)

    def _types(self, route: Route) -> list[Hashable]:
        seen = {kind for r in self.candidates for kind in self.metrics.types(r.key)}
        return sorted(seen, key=repr) or [None]

    # ---- orders -----------------------------------------------------------------------------

    def _declared(self, kind: Hashable, request: CompletionRequest | None) -> Sequence[Route]:
        return self.candidates

    def _cheapest(self, kind: Hashable, request: CompletionRequest | None) -> Sequence[Route]:
        records = [self.metrics.get(r.key, kind) for r in self.candidates]
        seen = [s for s in records if s.calls]
        # tokens of a request type hardly depend on the model: borrow a peer's record, else
        # guess (4 characters a token in, max_tokens out)
        if seen:
            peer_in, peer_out = seen[0].input_tokens, seen[0].output_tokens
        elif request is not None:
            peer_in, peer_out = len(request.prompt) / 4, request.max_tokens
        else:
            peer_in, peer_out = 0, 0

        def expected(index: int) -> tuple[float, int]:
            stats, price = records[index], self.candidates[index].provider.price
            if stats.calls:
                return stats.cost, index
            return price.cost(int(peer_in), int(peer_out)), index

        return [self.candidates[i] for _, i in sorted(map(expected, range(len(records))))]

    def _fastest(self, kind: Hashable, request: CompletionRequest | None) -> Sequence[Route]:
        records = [self.metrics.get(r.key, kind) for r in self.candidates]
        # cold start: each candidate in declared order gets WARMUP_CALLS calls to be timed
        for index, stats in enumerate(records):
            if stats.calls < WARMUP_CALLS:
                return [self.candidates[index], *self._rest(index)]
        order = sorted(range(len(records)), key=lambda i: (records[i].latency, i))
        return [self.candidates[i] for i in order]

    def _most_accurate(self, kind: Hashable, request: CompletionRequest | None) -> Sequence[Route]:
        """Thompson sampling: the candidate whose accuracy, drawn from its Beta(1 + right,
        1 + wrong) posterior, is highest; then the others (for failures) by posterior mean
        (right + 1) / (judged + 2), ties in declared order."""
        if len(self.candidates) == 1:
            return self.candidates
        feed = self._feed_of.get(kind) if self._feed_of else None
        stored: Tallies | None = None
        if feed is not None and isinstance(kind, tuple):
            stored = feed.tallies(kind)
        tallies: list[tuple[int, int]] = []
        for route in self.candidates:
            stats = self.metrics.get(route.key, kind)
            correct, judged = stats.correct, stats.judged
            if stored:
                more_correct, more_judged = stored.get(_answer_name(route), (0, 0))
                correct, judged = correct + more_correct, judged + more_judged
            tallies.append((correct, judged))
        with self._rng_lock:  # one stream per router: the same seed gives the same choices
            draws = [self._rng.betavariate(1 + c, 1 + j - c) for c, j in tallies]
        best = max(range(len(draws)), key=draws.__getitem__)
        rest = sorted(
            (i for i in range(len(tallies)) if i != best),
            key=lambda i: (-(tallies[i][0] + 1) / (tallies[i][1] + 2), i),
        )
        return [self.candidates[best], *(self.candidates[i] for i in rest)]

    def _weighted(self, kind: Hashable, request: CompletionRequest | None) -> Sequence[Route]:
        # smooth weighted round-robin (nginx): exact shares, spread out, no randomness
        with self._wrr_lock:
            total = 0.0
            best = 0
            for index, weight in enumerate(self._weights):
                if weight > 0:
                    self._current[index] += weight
                    total += weight
                    if self._current[index] > self._current[best] or self._weights[best] <= 0:
                        best = index
            self._current[best] -= total
        return [self.candidates[best], *self._rest(best)]

    def _rest(self, index: int) -> tuple[Route, ...]:
        return self.candidates[:index] + self.candidates[index + 1 :]

    # ---- calling ----------------------------------------------------------------------------

    async def _route(
        self,
        kind: Hashable,
        request: CompletionRequest | None,
        call: Callable[[Provider], Awaitable[T]],
        usage: Callable[[T, Route], tuple[float, int, int]],
    ) -> T:
        order: Sequence[Route] = self._order(kind, request)
        cascade = self.strategy == "cascade"
        spent = _Spent()
        answer: tuple[T, Route] | None = None  # the latest answer (a cascade's unsure one)
        abstention: tuple[T, Route] | None = None  # the latest, returned if nothing answered
        errors: list[str] = []
        last = len(order) - 1
        for index, route in enumerate(order):
            result = await self._attempt(route, kind, call, usage, spent, errors)
            if result is None:
                continue
            if abstained(result):
                abstention = (result, route)
                continue
            answer = (result, route)
            if not cascade or index == last:
                break
            confidence = _confidence(result)
            if confidence is not None and confidence >= self.thresholds[index]:
                break
        if answer is None:  # every candidate failed or abstained
            for route in self.fallbacks:
                result = await self._attempt(route, kind, call, usage, spent, errors)
                if result is None:
                    continue
                if abstained(result):
                    abstention = (result, route)
                    continue
                answer = (result, route)
                break
        if answer is None:
            answer = abstention
        if answer is None:
            raise ProviderError(f"models.{self.name}: every candidate failed — {'; '.join(errors)}")
        # a cascade whose bigger models failed (or abstained) keeps the unsure answer it has:
        # the step's review gate still sees its low confidence
        result, route = answer
        model = f"{route.alias}={result.model or route.provider.version}"
        # built field by field: dataclasses.replace costs several µs a call
        if isinstance(result, Completion):
            return Completion(
                text=result.text,
                confidence=result.confidence,
                input_tokens=spent.input_tokens,
                output_tokens=spent.output_tokens,
                seconds=spent.seconds,
                model=model,
                label=result.label,
                label_scores=result.label_scores,
                cost=spent.cost,
                calls=spent.calls,
                abstained=result.abstained,
            )
        return Prediction(
            label=result.label,
            probabilities=result.probabilities,
            confidence=result.confidence,
            seconds=spent.seconds,
            model=model,
            cost=spent.cost,
            calls=spent.calls,
            abstained=result.abstained,
        )

    async def _attempt(
        self,
        route: Route,
        kind: Hashable,
        call: Callable[[Provider], Awaitable[T]],
        usage: Callable[[T, Route], tuple[float, int, int]],
        spent: _Spent,
        errors: list[str],
    ) -> T | None:
        """One candidate's answer, or None (and why, in ``errors``) when it failed."""
        breaker = route.breaker
        if breaker is not None and not breaker.allow():
            errors.append(f"{route.alias}: {breaker.refuse()}")
            return None
        stats = self.metrics.get(route.key, kind)
        started = time.perf_counter()
        try:
            if self.timeout is None:
                result = await call(route.provider)
            else:
                async with asyncio.timeout(self.timeout):
                    result = await call(route.provider)
        except (ProviderError, TimeoutError) as exc:
            if breaker is not None:
                breaker.record_failure()
            stats.errors += 1
            reason = str(exc) or f"no answer within {self.timeout}s"
            errors.append(f"{route.alias}: {type(exc).__name__}: {reason}")
            return None
        except BaseException:
            if breaker is not None:
                breaker.release()
            raise
        elapsed = time.perf_counter() - started
        if breaker is not None:
            breaker.record_success()
        cost, input_tokens, output_tokens = usage(result, route)
        stats.observe(elapsed, cost, input_tokens, output_tokens)
        spent.add(result, cost)
        return result


class _Spent:
    """What the calls of one routed request used, summed."""

    __slots__ = ("calls", "cost", "input_tokens", "output_tokens", "seconds")

    def __init__(self) -> None:
        self.calls = 0
        self.cost = 0.0
        self.seconds = 0.0
        self.input_tokens = 0
        self.output_tokens = 0

    def add(self, result: Completion | Prediction, cost: float) -> None:
        self.calls += result.calls
        self.cost += cost
        self.seconds += result.seconds
        if isinstance(result, Completion):
            self.input_tokens += result.input_tokens
            self.output_tokens += result.output_tokens


def _completion_usage(result: Completion, route: Route) -> tuple[float, int, int]:
    cost = result.cost
    if cost is None:
        cost = route.provider.price.cost(result.input_tokens, result.output_tokens)
    return cost, result.input_tokens, result.output_tokens


def _prediction_usage(result: Prediction, route: Route) -> tuple[float, int, int]:
    return (route.provider.price.cost(0, 0) if result.cost is None else result.cost), 0, 0


def _answer_name(route: Route) -> str:
    """How the store names the route's answers (``versions.answered_by``); a nested router's
    answers name the candidate under it too, so they count under ``alias=*``."""
    if getattr(route.provider, "routes", False):
        return f"{route.alias}=*"
    return f"{route.alias}={route.provider.version}"


def _confidence(result: Completion | Prediction) -> float | None:
    if result.confidence is not None or isinstance(result, Completion):
        return result.confidence
    return result.probabilities.get(str(result.label))
