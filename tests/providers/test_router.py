"""RouterProvider: every strategy, cascade escalation and its usage, fallbacks, breakers, the
registry's wiring and the validation of router entries; then real scikit-learn candidates."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from relayflow.errors import ProviderError, ProviderTimeout, SpecError
from relayflow.providers import cache as provider_cache
from relayflow.providers import registry
from relayflow.providers.base import Completion, CompletionRequest, Prediction, Price, Provider
from relayflow.providers.breaker import CircuitBreaker, reset_breakers
from relayflow.providers.context import request_type
from relayflow.providers.registry import build_provider, close_all
from relayflow.providers.router import WARMUP_CALLS, Metrics, Route, RouterProvider
from relayflow.providers.router_config import RouterConfig
from relayflow.schema.file import WorkflowSpec
from relayflow.spec.loader import load_spec

FREE = Price()


class Scripted:
    """An in-memory provider (the boundary): answers with a fixed confidence and token counts,
    or raises what it is told to, and counts its calls."""

    def __init__(
        self,
        name: str,
        *,
        confidence: float | None = 0.9,
        price: Price = FREE,
        tokens: tuple[int, int] = (10, 2),
        seconds: float = 0.01,
        fail: BaseException | None = None,
        hang: bool = False,
    ) -> None:
        self.name, self.version, self.price = name, f"{name}-v1", price
        self.confidence, self.tokens, self.seconds = confidence, tokens, seconds
        self.fail, self.hang, self.calls = fail, hang, 0

    async def complete(self, request: CompletionRequest) -> Completion:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.fail is not None:
            raise self.fail
        return Completion(
            f"{self.name} says hi",
            self.confidence,
            *self.tokens,
            seconds=self.seconds,
            model=self.version,
            label="yes",
        )

    async def predict(self, features: Mapping[str, Any]) -> Prediction:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        p = self.confidence or 0.5
        return Prediction(self.name, {self.name: p, "other": 1 - p}, seconds=self.seconds)

    async def close(self) -> None:
        return None


class Abstaining(Scripted):
    """A learned model with too few labels: it passes on every item."""

    async def complete(self, request: CompletionRequest) -> Completion:
        self.calls += 1
        return Completion("", 0.0, 0, 0, seconds=0.001, model=self.version, label=None)

    async def predict(self, features: Mapping[str, Any]) -> Prediction:
        self.calls += 1
        return Prediction(None, {}, confidence=0.0, seconds=0.001, model=self.version)


def router(
    strategy: str,
    candidates: Sequence[Scripted],
    *,
    fallbacks: Sequence[Scripted] = (),
    breakers: bool = False,
    **settings: Any,
) -> RouterProvider:
    def route(p: Scripted) -> Route:
        return Route(p.name, p, CircuitBreaker(p.name, failure_threshold=2) if breakers else None)

    return RouterProvider(
        "r",
        strategy,
        [route(p) for p in candidates],
        fallbacks=[route(p) for p in fallbacks],
        metrics=Metrics(),
        **settings,
    )


ASK = CompletionRequest("Is this spam?", labels=["yes", "no"])


def ask(r: RouterProvider, request: CompletionRequest = ASK) -> Completion:
    return asyncio.run(r.complete(request))


# cascade


def test_cascade_stops_at_a_confident_small_model() -> None:
    small = Scripted("small", confidence=0.95, price=Price(per_call=0.001))
    big = Scripted("big", confidence=0.99, price=Price(per_call=0.01))
    answer = ask(router("cascade", [small, big], threshold=0.8))
    assert (small.calls, big.calls) == (1, 0)
    assert answer.text == "small says hi" and answer.model == "small=small-v1"
    assert answer.cost == pytest.approx(0.001) and answer.calls == 1


def test_cascade_escalates_and_counts_every_call() -> None:
    small = Scripted("small", confidence=0.6, price=Price(1.0, 2.0, 0.001), tokens=(100, 5))
    big = Scripted("big", confidence=0.7, price=Price(10.0, 20.0, 0.01), tokens=(120, 7))
    answer = ask(router("cascade", [small, big], threshold=0.8))
    assert (small.calls, big.calls) == (1, 1)
    # under the threshold at the last candidate too: the last answer stands
    assert answer.text == "big says hi" and answer.confidence == 0.7
    assert (answer.input_tokens, answer.output_tokens, answer.calls) == (220, 12, 2)
    assert answer.seconds == pytest.approx(0.02)
    small_cost = (100 * 1.0 + 5 * 2.0) / 1e6 + 0.001
    big_cost = (120 * 10.0 + 7 * 20.0) / 1e6 + 0.01
    assert answer.cost == pytest.approx(small_cost + big_cost)


def test_cascade_treats_an_unknown_confidence_as_unsure() -> None:
    small, big = Scripted("small", confidence=None), Scripted("big", confidence=0.9)
    assert ask(router("cascade", [small, big], threshold=0.5)).model == "big=big-v1"


def test_cascade_keeps_the_unsure_answer_when_the_big_model_fails() -> None:
    small = Scripted("small", confidence=0.4)
    big = Scripted("big", fail=ProviderError("503"))
    answer = ask(router("cascade", [small, big], threshold=0.8))
    assert answer.model == "small=small-v1" and answer.confidence == 0.4 and answer.calls == 1


def test_cascade_on_predictions_uses_the_class_probability() -> None:
    small, big = Scripted("small", confidence=0.55), Scripted("big", confidence=0.97)
    r = router("cascade", [small, big], threshold=0.9)
    answer = asyncio.run(r.predict({"a": 1.0}))
    assert answer.label == "big" and answer.calls == 2 and answer.model == "big=big-v1"
    small.confidence = 0.95
    assert asyncio.run(r.predict({"a": 1.0})).label == "small"


def test_cascade_passes_an_abstention_on_even_at_threshold_zero() -> None:
    learned = Abstaining("learned")
    llm = Scripted("llm", confidence=0.3)
    answer = ask(router("cascade", [learned, llm], threshold=0.0))
    assert answer.model == "llm=llm-v1" and answer.text == "llm says hi"
    assert learned.calls == 1 and answer.calls == 2


def test_a_cascade_whose_last_candidate_abstains_returns_the_abstention() -> None:
    first, last = Abstaining("first"), Abstaining("last")
    answer = ask(router("cascade", [first, last], threshold=0.8))
    assert (answer.label, answer.text, answer.confidence) == (None, "", 0.0)
    assert answer.model == "last=last-v1" and answer.calls == 2
    predicted = asyncio.run(router("cascade", [first, last], threshold=0.8).predict({"a": 1}))
    assert predicted.label is None and predicted.confidence == 0.0
    assert predicted.model == "last=last-v1"


def test_an_abstention_does_not_replace_an_unsure_answer() -> None:
    small, learned = Scripted("small", confidence=0.4), Abstaining("learned")
    answer = ask(router("cascade", [small, learned], threshold=0.8))
    assert answer.model == "small=small-v1" and answer.confidence == 0.4 and answer.calls == 2


def test_fallbacks_answer_when_every_candidate_abstained_but_not_an_unsure_last_one() -> None:
    learned, spare = Abstaining("learned"), Scripted("spare")
    assert ask(router("cascade", [learned], fallbacks=[spare], threshold=0.9)).model == (
        "spare=spare-v1"
    )
    unsure = Scripted("unsure", confidence=0.2)
    spare.calls = 0
    r = router("cascade", [Scripted("small", confidence=0.1), unsure], fallbacks=[spare],
               threshold=0.9)  # fmt: skip
    assert ask(r).model == "unsure=unsure-v1" and spare.calls == 0


def test_per_candidate_thresholds_decide_where_each_answer_stops() -> None:
    tiny = Scripted("tiny", confidence=0.85)
    small = Scripted("small", confidence=0.75)
    big = Scripted("big", confidence=0.1)
    r = router("cascade", [tiny, small, big], thresholds=[0.9, 0.7])
    assert ask(r).model == "small=small-v1"  # tiny's 0.85 < 0.9; small's 0.75 >= 0.7
    tiny.confidence = 0.95
    assert ask(r).model == "tiny=tiny-v1"
    tiny.confidence, small.confidence = 0.5, 0.5
    assert ask(r).model == "big=big-v1"  # the last answer stands, however unsure
    assert r.version != router("cascade", [tiny, small, big], thresholds=[0.9, 0.6]).version
    # a single threshold keeps the version it had before thresholds existed
    single = router("cascade", [tiny, small], threshold=0.8)
    assert single.thresholds == (0.8,)
    with pytest.raises(ProviderError, match="1 thresholds for 3 candidates"):
        router("cascade", [tiny, small, big], thresholds=[0.9])


# cheapest, fastest, most_accurate, weighted


def test_cheapest_prices_the_request_before_any_record() -> None:
    per_token = Scripted("per_token", price=Price(input_per_1m=1000.0))  # 4 tokens: 0.004
    per_call = Scripted("per_call", price=Price(per_call=0.001))
    r = router("cheapest", [per_token, per_call])
    assert ask(r, CompletionRequest("x" * 16)).model == "per_call=per_call-v1"
    assert ask(r, CompletionRequest("x")).model == "per_call=per_call-v1"
    assert per_token.calls == 0


def test_cheapest_uses_recorded_tokens() -> None:
    # per_token looks cheap for a short prompt, but its answers are long
    per_token = Scripted("per_token", price=Price(output_per_1m=100.0), tokens=(3, 200))
    per_call = Scripted("per_call", price=Price(per_call=0.001))
    r = router("cheapest", [per_token, per_call])
    short = CompletionRequest("hi", max_tokens=4)
    assert ask(r, short).model == "per_token=per_token-v1"  # 4 tokens out: 0.0004 < 0.001
    assert ask(r, short).model == "per_call=per_call-v1"  # recorded: 200 tokens, 0.02


def test_fastest_times_each_candidate_then_picks_the_quickest() -> None:
    slow, quick = Scripted("slow"), Scripted("quick")
    r = router("fastest", [slow, quick])
    r.metrics.get("slow@slow-v1", _kind(ASK)).observe(0.5, 0, 0, 0)
    for _ in range(WARMUP_CALLS):
        r.metrics.get("slow@slow-v1", _kind(ASK)).observe(0.5, 0, 0, 0)
    answers = [ask(r).model for _ in range(WARMUP_CALLS + 2)]
    # quick is timed WARMUP_CALLS times, then keeps winning (it answers at once)
    assert answers == ["quick=quick-v1"] * (WARMUP_CALLS + 2)
    assert slow.calls == 0


def test_fastest_cold_start_follows_the_declared_order() -> None:
    a, b = Scripted("a"), Scripted("b")
    r = router("fastest", [a, b])
    [ask(r) for _ in range(WARMUP_CALLS)]
    assert (a.calls, b.calls) == (WARMUP_CALLS, 0)


def _shares(r: RouterProvider, calls: int) -> dict[str, int]:
    """How many of ``calls`` calls each candidate answered."""
    answered = [ask(r).model.split("=")[0] for _ in range(calls)]
    return {route.alias: answered.count(route.alias) for route in r.candidates}


def test_most_accurate_samples_so_a_candidate_without_outcomes_gets_calls() -> None:
    a, b = Scripted("a"), Scripted("b")
    r = router("most_accurate", [a, b], seed=1)
    for _ in range(10):  # a is measured (20 of 26 right); b never answered
        r.record_outcome("a", True, _kind(ASK))
        r.record_outcome("a", True, _kind(ASK))
    for _ in range(6):
        r.record_outcome("a", False, _kind(ASK))
    shares = _shares(r, 200)
    # Beta(1, 1) for b against Beta(21, 7) for a (mean 0.75): b wins a draw about 1 in 4
    assert 0 < shares["b"] < shares["a"], shares
    assert shares["b"] >= 20  # not a fluke: exploring, not a rare draw
    with pytest.raises(ProviderError, match="'zed' is not one of its candidates"):
        r.record_outcome("zed", True)


def test_most_accurate_gives_the_clearly_better_candidate_the_majority() -> None:
    a, b, c = Scripted("a"), Scripted("b"), Scripted("c")
    r = router("most_accurate", [a, b, c], seed=2)
    for index in range(40):
        r.record_outcome("a", index % 2 == 0, _kind(ASK))  # 20 of 40
        r.record_outcome("b", index % 10 != 0, _kind(ASK))  # 36 of 40
        r.record_outcome("c", index % 4 == 0, _kind(ASK))  # 10 of 40
    shares = _shares(r, 200)
    assert shares["b"] > 190 and shares["b"] > shares["a"] + shares["c"], shares


def test_the_same_seed_makes_the_same_choices_and_another_seed_others() -> None:
    def choices(seed: int | str | None, name: str = "r") -> list[str]:
        a, b, c = Scripted("a"), Scripted("b"), Scripted("c")
        r = RouterProvider(
            name, "most_accurate", [Route(p.name, p, None) for p in (a, b, c)], metrics=Metrics(),
            seed=seed,
        )  # fmt: skip
        return [ask(r).model for _ in range(40)]  # no outcomes: uniform draws

    first = choices(7)
    assert choices(7) == first and len(set(first)) == 3
    assert choices(8) != first
    # without a seed, the router's name seeds it: the same in every process
    assert choices(None, "gate") == choices("gate", "other")


def test_most_accurate_tries_the_others_by_posterior_mean_when_the_draw_fails() -> None:
    a = Scripted("a", fail=ProviderError("503"))
    b, c = Scripted("b"), Scripted("c")
    r = router("most_accurate", [a, b, c], seed=0)
    for index in range(50):
        r.record_outcome("a", True, _kind(ASK))  # a draws highest but is down
        r.record_outcome("c", index % 5 != 0, _kind(ASK))  # 40 of 50
        r.record_outcome("b", False, _kind(ASK))
    kind = _kind(ASK)
    assert r._most_accurate(kind, ASK)[0].alias == "a"
    assert [route.alias for route in r._most_accurate(kind, ASK)][1:] == ["c", "b"]
    assert ask(r).model == "c=c-v1" and a.calls == 1 and b.calls == 0


def test_weighted_splits_calls_exactly_and_deterministically() -> None:
    a, b, c = Scripted("a"), Scripted("b"), Scripted("c")
    r = router("weighted", [a, b, c], weights={"a": 3, "b": 1, "c": 0})
    first = [ask(r).model.split("=")[0] for _ in range(8)]
    assert (a.calls, b.calls, c.calls) == (6, 2, 0)
    assert first[:4].count("b") == 1  # spread out, not three a's then a b in a block


# fallbacks, timeouts, breakers


def test_an_error_passes_to_the_next_candidate_then_to_fallbacks() -> None:
    a = Scripted("a", fail=ProviderError("500"))
    b = Scripted("b", fail=ProviderTimeout("read timeout"))
    spare = Scripted("spare")
    answer = ask(router("cheapest", [a, b], fallbacks=[spare]))
    assert answer.model == "spare=spare-v1" and (a.calls, b.calls, spare.calls) == (1, 1, 1)


def test_a_hung_candidate_times_out_into_the_fallback() -> None:
    hung, spare = Scripted("hung", hang=True), Scripted("spare")
    answer = ask(router("cheapest", [hung], fallbacks=[spare], timeout=0.05))
    assert answer.model == "spare=spare-v1"


def test_every_failure_is_one_provider_error_naming_each() -> None:
    a = Scripted("a", fail=ProviderError("boom"))
    b = Scripted("b", hang=True)
    with pytest.raises(ProviderError, match=r"every candidate failed — a: .*boom; b: Timeout"):
        ask(router("weighted", [a], fallbacks=[b], weights={"a": 1}, timeout=0.05))


def test_other_errors_are_not_swallowed() -> None:
    bug = Scripted("bug", fail=KeyError("x"))
    with pytest.raises(KeyError):
        ask(router("cheapest", [bug], fallbacks=[Scripted("spare")]))


def test_an_open_breaker_skips_the_candidate_without_calling_it() -> None:
    flaky, spare = Scripted("flaky", fail=ProviderError("502")), Scripted("spare")
    r = router("cheapest", [flaky], fallbacks=[spare], breakers=True)
    for _ in range(4):
        assert ask(r).model == "spare=spare-v1"
    assert flaky.calls == 2  # failure_threshold=2: then the circuit is open
    assert r.candidates[0].breaker is not None and r.candidates[0].breaker.state == "open"


def test_a_cascade_needs_a_threshold_and_a_router_candidates() -> None:
    with pytest.raises(ProviderError, match="needs a threshold"):
        router("cascade", [Scripted("a")])
    with pytest.raises(ProviderError, match="at least one candidate"):
        router("cheapest", [])


def test_the_version_follows_the_candidates_and_settings() -> None:
    a, b = Scripted("a"), Scripted("b")
    v1 = router("cascade", [a, b], threshold=0.8).version
    assert v1.startswith("router:cascade@")
    assert router("cascade", [a, b], threshold=0.8).version == v1
    assert router("cascade", [a, b], threshold=0.7).version != v1
    b.version = "b-v2"
    assert router("cascade", [a, b], threshold=0.8).version != v1


def _kind(request: CompletionRequest) -> Any:
    return (
        "complete",
        request.system,
        tuple(request.labels or ()),
        request.json_schema is not None,
        request.max_tokens,
    )


# the registry and the YAML


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    asyncio.run(close_all())
    reset_breakers()
    yield
    asyncio.run(close_all())
    reset_breakers()


def _spec(text: str, folder: Path) -> WorkflowSpec:
    file = folder / "wf.yaml"
    file.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_spec(file).spec


WORKFLOW = """\
workflow:
  - name: ask
    type: inference
    model: {model}
    prompt: "{{{{ data.text }}}}"
"""


def _problems(text: str, folder: Path, model: str = "r") -> list[str]:
    file = folder / "wf.yaml"
    file.write_text(textwrap.dedent(text) + WORKFLOW.format(model=model), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(file)
    return [str(p).split(": ", 1)[1] for p in info.value.problems]


def test_validation_reports_unknown_candidates_with_their_line(tmp_path: Path) -> None:
    text = """\
    models:
      small: {}
      r:
        provider: router
        strategy: cheapest
        candidates: [small, huge]
        fallbacks: [gone]
    """
    file = tmp_path / "wf.yaml"
    file.write_text(textwrap.dedent(text) + WORKFLOW.format(model="r"), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(file)
    found = [(p.line, p.field, p.message, p.fix) for p in info.value.problems]
    assert found == [
        (6, "models.r.candidates", "unknown model alias 'huge'", "use one of: small"),
        (7, "models.r.fallbacks", "unknown model alias 'gone'", "use one of: small"),
    ]


def test_validation_reports_a_routing_cycle_once(tmp_path: Path) -> None:
    found = _problems(
        """\
        models:
          small: {}
          r: {provider: router, strategy: cheapest, candidates: [small, s]}
          s: {provider: router, strategy: fastest, candidates: [r]}
        """,
        tmp_path,
    )
    assert found == [
        "models.r.candidates: routing cycle: r -> s -> r (each routes to the next) — "
        "remove 's' from r's candidates"
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{provider: router, candidates: [a]}", "models.r.strategy: a router needs a strategy"),
        ("{provider: router, strategy: cheapest}", "models.r.candidates: a router needs candid"),
        ("{provider: router, strategy: cascade, candidates: [a]}", "models.r.threshold: strategy "),
        ("{provider: router, strategy: cheapest, candidates: [r]}", "models.r.candidates: a rout"),
        ("{provider: router, strategy: weighted, candidates: [a]}", "models.r.weights: no weight"),
        ("{provider: router, strategy: fastest, candidates: [a], threshold: 0.5}", "models.r.thr"),
        ("{provider: router, strategy: fastest, candidates: [a], model: x}", "models.r.model: a "),
        ("{provider: sklearn, model: m.joblib, candidates: [a]}", "models.r.candidates: `candid"),
        ("{provider: router, strategy: fastest, candidates: [a], outcomes: {}}", "models.r.outc"),
        ("{provider: sklearn, model: m.joblib, outcomes: {seed: 5}}", "models.r.outcomes: `o"),
        (
            "{provider: router, strategy: most_accurate, candidates: [a], outcomes: {minimum: 5}}",
            "models.r.outcomes.minimum: no longer used: most_accurate samples",
        ),
        (
            "{provider: router, strategy: most_accurate, candidates: [a], outcomes: {seed: x}}",
            "models.r.outcomes.seed: input should be a valid integer",
        ),
        (
            "{provider: router, strategy: cascade, candidates: [a, b, c], thresholds: [0.9]}",
            "models.r.thresholds: 1 thresholds for 3 candidates: a cascade has one per "
            "candidate except the last (whose answer stands) — list 2: thresholds: [0.8, 0.8]",
        ),
        (
            "{provider: router, strategy: cascade, candidates: [a, b], threshold: 0.5, "
            "thresholds: [0.9]}",
            "models.r.thresholds: set either threshold or thresholds, not both",
        ),
        (
            "{provider: router, strategy: cascade, candidates: [a, b], thresholds: [1.5]}",
            "models.r.thresholds[0]: input should be less than or equal to 1",
        ),
        (
            "{provider: router, strategy: fastest, candidates: [a], thresholds: [0.5]}",
            "models.r.thresholds: thresholds applies to strategy cascade only",
        ),
    ],
)
def test_validation_of_router_settings(tmp_path: Path, entry: str, message: str) -> None:
    found = _problems(f"models:\n  a: {{}}\n  b: {{}}\n  c: {{}}\n  r: {entry}\n", tmp_path)
    assert len(found) == 1 and found[0].startswith(message), found


def test_a_valid_router_loads_and_keeps_existing_entries_valid(tmp_path: Path) -> None:
    spec = _spec(
        textwrap.dedent(
            """\
        models:
          small: {provider: llama_cpp}
          big: {provider: openai, model: gpt-4o}
          r:
            provider: router
            strategy: weighted
            candidates: [small, big]
            weights: {small: 3, big: 1}
            breaker: {failures: 3, reset_after: 10}
        """
        )
        + WORKFLOW.format(model="r"),
        tmp_path,
    )
    assert spec.models["r"].section is spec.models
    router = spec.models["r"]
    assert isinstance(router, RouterConfig) and router.breaker.failures == 3
    assert spec.models["small"] == spec.models["small"].model_copy()


def _train(folder: Path, name: str, estimator: Any) -> Path:
    import joblib
    import numpy as np

    x = np.array([[0.0], [0.2], [0.4], [0.6], [0.8], [1.0], [0.45], [0.55]])
    y = np.array(["no", "no", "no", "yes", "yes", "yes", "yes", "no"])
    path = folder / f"{name}.joblib"
    joblib.dump(estimator.fit(x, y), path)
    return path


def test_a_router_over_real_sklearn_models_cascades_and_prices_each_call(
    tmp_path: Path,
) -> None:
    pytest.importorskip("sklearn")
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    _train(tmp_path, "small", LogisticRegression(C=10.0))
    _train(tmp_path, "big", GradientBoostingClassifier(random_state=0))
    spec = _spec(
        """\
        models:
          small: {provider: sklearn, model: small.joblib, price: {per_call: 0.001}}
          big: {provider: sklearn, model: big.joblib, price: {per_call: 0.01}}
          gate:
            provider: router
            strategy: cascade
            candidates: [small, big]
            threshold: 0.75
        workflow:
          - name: score
            type: inference
            model: gate
            features: [x]
        """,
        tmp_path,
    )
    gate = build_provider("gate", spec.models["gate"], tmp_path)
    assert isinstance(gate, RouterProvider) and isinstance(gate, Provider)
    assert build_provider("gate", spec.models["gate"], tmp_path) is gate
    small = build_provider("small", spec.models["small"], tmp_path)
    assert gate.candidates[0].provider is small

    sure = asyncio.run(gate.predict({"x": 0.0}))
    unsure = asyncio.run(gate.predict({"x": 0.5}))
    # the logistic regression is sure far from the boundary (p ≈ 0.85) and unsure on it (0.5)
    assert sure.calls == 1 and sure.model.startswith("small=small.joblib@")
    assert sure.label == "no" and sure.cost == pytest.approx(0.001)
    assert unsure.calls == 2 and unsure.model.startswith("big=big.joblib@")
    assert unsure.cost == pytest.approx(0.011)
    assert unsure.label in {"yes", "no"} and unsure.seconds > 0
    assert gate.version != build_provider("big", spec.models["big"], tmp_path).version

    # a retrained candidate (a new file) makes a new router with a new version
    _train(tmp_path, "big", LogisticRegression())
    assert build_provider("gate", spec.models["gate"], tmp_path).version != gate.version


def test_build_provider_refuses_a_router_cycle_it_was_not_validated_for(tmp_path: Path) -> None:
    spec = WorkflowSpec.model_validate(
        {
            "workflow": [{"name": "a", "type": "transform", "script": "x.py"}],
            "models": {
                "r": {"provider": "router", "strategy": "cheapest", "candidates": ["s"]},
                "s": {"provider": "router", "strategy": "cheapest", "candidates": ["r"]},
            },
        }
    )
    with pytest.raises(ProviderError, match="routing cycle r -> s -> r"):
        build_provider("r", spec.models["r"], tmp_path)
    with pytest.raises(ProviderError, match="'s' is not defined under models"):
        build_provider("r", spec.models["r"], tmp_path, models={"r": spec.models["r"]})


def test_registry_keeps_no_router_after_close_all() -> None:
    assert not any(key[0] == "router" for key in provider_cache._providers)


# outcomes: the request type of a step, the run store's reviews and labels, the minimum


def test_the_step_sets_the_request_type_of_its_calls() -> None:
    a, b = Scripted("a"), Scripted("b")
    r = router("most_accurate", [a, b])
    for _ in range(30):  # clear enough that a draw never picks the other (seeded anyway)
        r.record_outcome("a", False, ("wf", "triage"))
        r.record_outcome("b", True, ("wf", "triage"))
        r.record_outcome("a", True, ("wf", "reply"))
        r.record_outcome("b", False, ("wf", "reply"))

    def ask_for(step: str | None) -> str:
        async def call() -> str:
            token = request_type.set(("wf", step) if step else None)
            try:
                return (await r.complete(ASK)).model
            finally:
                request_type.reset(token)

        return asyncio.run(call())

    assert ask_for("triage") == "b=b-v1"
    assert ask_for("reply") == "a=a-v1"
    # no step: keyed by the request's shape, never judged, so both are explored
    assert {ask_for(None) for _ in range(20)} == {"a=a-v1", "b=b-v1"}
    assert request_type.get() is None
    # latency and cost are recorded under the step's type too
    assert r.metrics.get("b@b-v1", ("wf", "triage")).calls == 1
    assert r.metrics.get("a@a-v1", ("wf", "triage")).calls == 0
    assert r.metrics.get("a@a-v1", _kind(ASK)).calls > 0


def test_store_and_in_process_outcomes_add_up(tmp_path: Path) -> None:
    """Neither feed alone settles it: the store says a is 9 of 10 right, b 10 of 10, and
    in-process outcomes add 30 wrong answers of b."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    _reviewed(url, "ask", [("a=a-v1", "yes", "approve")] * 9 + [("a=a-v1", "yes", "correct")])
    _reviewed(url, "ask", [("b=b-v1", "yes", "approve")] * 10)
    r = router("most_accurate", [Scripted("a"), Scripted("b")], seed=3)
    asyncio.run(r.watch(url, "wf", "ask", "label"))
    kind = ("wf", "ask")
    for _ in range(30):
        r.record_outcome("b", False, kind)
    picks = [r._most_accurate(kind, ASK)[0].alias for _ in range(50)]
    assert picks.count("a") > 45, picks  # a: Beta(10, 2); b: Beta(11, 31)
    asyncio.run(r.close())


def _reviewed(url: str, step: str, answers: Sequence[tuple[str, str, str]]) -> None:
    """Rows as the run store writes them: a finished step of workflow ``wf`` answered by a
    router candidate (``answered_by``, its answer), and its run's review (approve/correct)."""
    import json
    import uuid

    from sqlalchemy import insert

    from relayflow.store import schema
    from relayflow.store.database import open_database

    engine = open_database(url, create=True)
    with engine.begin() as conn:
        for answered_by, answer, decision in answers:
            run_id = uuid.uuid4().hex
            seen = {"text": "hi", "label": answer}
            decided = seen if decision == "approve" else {**seen, "label": f"not {answer}"}
            conn.execute(
                insert(schema.steps).values(
                    run_id=run_id, step=step, agent_type="inference", status="finished",
                    attempt=1, actor="agent", output=json.dumps(seen), input_tokens=10,
                    output_tokens=2, model_calls=1, model_seconds=0.01, cost=0.0,
                    versions=json.dumps({"model": "r", "answered_by": answered_by}),
                    flags="[]",
                )
            )  # fmt: skip
            conn.execute(
                insert(schema.reviews).values(
                    review_id=f"{run_id}:check", run_id=run_id, step="check", workflow="wf",
                    status="corrected", reason="", input=json.dumps(seen),
                    output=json.dumps(seen), decision=decision,
                    decided_output=json.dumps(decided), created=0.0, decided=0.0,
                )
            )  # fmt: skip
    engine.dispose()


def test_store_outcomes_are_read_again_only_after_the_refresh_interval(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    _reviewed(url, "ask", [("b=b-v1", "yes", "approve")] * 20 + [("a=a-v1", "no", "correct")] * 20)
    now = [0.0]
    a, b = Scripted("a"), Scripted("b")
    r = router("most_accurate", [a, b], refresh=60.0, clock=lambda: now[0])

    def ask_step() -> str:
        async def call() -> str:
            token = request_type.set(("wf", "ask"))
            try:
                return (await r.complete(ASK)).model
            finally:
                request_type.reset(token)

        # asyncio.run waits for the worker thread of a read it started
        return asyncio.run(call())

    asyncio.run(r.watch(url, "wf", "ask", "label"))
    feed = r._feed_of[("wf", "ask")]
    assert feed.loads == 1
    assert feed.tallies(("wf", "ask")) == {"b=b-v1": (20, 20), "a=a-v1": (0, 20)}
    assert ask_step() == "b=b-v1"
    # b is now wrong 60 times, a right 60 times: a leads by far
    _reviewed(url, "ask", [("b=b-v1", "yes", "correct")] * 60 + [("a=a-v1", "no", "approve")] * 60)
    now[0] = 59.0
    assert ask_step() == "b=b-v1" and feed.loads == 1  # not due: the store is not read
    now[0] = 61.0
    assert ask_step() == "b=b-v1"  # due: a read starts, this call does not wait for it
    assert feed.loads == 2
    assert ask_step() == "a=a-v1"
    assert feed.tallies(("wf", "ask")) == {"b=b-v1": (20, 80), "a=a-v1": (60, 80)}
    asyncio.run(r.close())


def test_other_strategies_do_not_read_the_store(tmp_path: Path) -> None:
    r = router("cheapest", [Scripted("a")])
    asyncio.run(r.watch(f"sqlite:///{tmp_path / 'none.db'}", "wf", "ask", "label"))
    assert not r._feeds and not (tmp_path / "none.db").exists()


def test_read_outcomes_judges_by_hand_labels_then_reviews_that_saw_the_answer(
    tmp_path: Path,
) -> None:
    import json

    from sqlalchemy import insert

    from relayflow.providers.outcomes import read_outcomes
    from relayflow.store import schema
    from relayflow.store.database import open_database

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    engine = open_database(url, create=True)

    def step(run_id: str, answered_by: str | None, label: str) -> dict[str, Any]:
        versions = {"answered_by": answered_by} if answered_by else {}
        return dict(
            run_id=run_id, step="ask", agent_type="inference", status="finished", attempt=1,
            actor="agent", output=json.dumps({"label": label}), input_tokens=0,
            output_tokens=0, model_calls=1, model_seconds=0.0, cost=0.0,
            versions=json.dumps(versions), flags="[]",
        )  # fmt: skip

    def review(run_id: str, seen: str, decision: str, decided: str) -> dict[str, Any]:
        return dict(
            review_id=f"{run_id}:check", run_id=run_id, step="check", workflow="wf",
            status="done", reason="", input="{}", output=json.dumps({"label": seen}),
            decision=decision, decided_output=json.dumps({"label": decided}), created=0.0,
            decided=0.0,
        )  # fmt: skip

    def label(run_id: str, value: Any, at_step: str | None) -> dict[str, Any]:
        return dict(
            feedback_id=f"manual:{run_id}", workflow="wf", run_id=run_id, step=at_step,
            label=json.dumps(value), source="manual", created=1.0,
        )  # fmt: skip

    with engine.begin() as conn:
        conn.execute(
            insert(schema.steps),
            [
                step("r1", "a=v1", "spam"),  # approved
                step("r2", "a=v1", "spam"),  # corrected to ham
                step("r3", "a=v1", "Spam "),  # corrected, but this field kept (normalised)
                step("r4", "a=v1", "spam"),  # reviewer saw another value: not judged
                step("r5", "a=v1", "spam"),  # hand label ham wins over the approval
                step("r6", "b=v2", "ham"),  # hand label for the whole run: {"label": "ham"}
                step("r7", None, "spam"),  # not routed
                step("r8", "gate=small=v1", "ham"),  # a nested router's answer
            ],
        )
        conn.execute(
            insert(schema.reviews),
            [
                review("r1", "spam", "approve", "spam"),
                review("r2", "spam", "correct", "ham"),
                review("r3", "spam", "correct", "spam"),
                review("r4", "ham", "approve", "ham"),
                review("r5", "spam", "approve", "spam"),
                review("r7", "spam", "correct", "ham"),
                review("r8", "ham", "approve", "ham"),
            ],
        )
        conn.execute(
            insert(schema.feedback),
            [label("r5", {"label": "ham"}, "ask"), label("r6", {"label": "ham"}, None)],
        )
    found = read_outcomes(engine, "wf", {"ask": "label"})
    engine.dispose()
    assert found == {
        "ask": {
            "a=v1": (2, 4),
            "b=v2": (1, 1),
            "gate=small=v1": (1, 1),
            "gate=*": (1, 1),
        }
    }
    assert read_outcomes(open_database(url), "other", {"ask": "label"}) == {}


ROUTED = """\
name: routed
models:
  a: {{provider: sklearn, model: a.joblib}}
  b: {{provider: sklearn, model: b.joblib}}
  gate: {{provider: router, {router}}}
workflow:
  - {{name: first, type: inference, model: gate, features: [x], output_field: first}}
  - {{name: second, type: inference, model: gate, features: [x], output_field: second}}
  - {{name: check, type: human_review, when: "true"}}
"""


def test_reviews_in_the_run_store_make_most_accurate_pick_per_step(tmp_path: Path) -> None:
    """Real runs, reviews and candidates: b is right on step ``first`` and wrong on
    ``second``, a the reverse; most_accurate then routes each step to its better model."""
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression

    import relayflow

    _train(tmp_path, "a", LogisticRegression())
    _train(tmp_path, "b", LogisticRegression(C=10.0))
    store = str(tmp_path / "runs.db")

    def flip(value: Any) -> str:
        return "no" if value == "yes" else "yes"

    async def history(router_yaml: str, wrong: str) -> set[str]:
        """Run 6 items through a router that always takes its first candidate's answer; the
        reviewer corrects step ``wrong``'s answer and keeps the other step's. Who answered."""
        file = tmp_path / "wf.yaml"
        file.write_text(ROUTED.format(router=router_yaml), encoding="utf-8")
        answered: set[str] = set()
        async with relayflow.Runner(relayflow.load_workflow(file), store=store) as runner:
            for i in range(6):
                parked = await runner.run({"x": i / 5})
                assert parked.status == "waiting_review"
                assert runner.store is not None
                steps = {s.step: s for s in runner.store.steps(parked.run_id)}
                answered |= {
                    steps[name].versions["answered_by"][:1] for name in ("first", "second")
                }
                seen = steps["check"].output
                assert seen is not None
                fixed = {**seen, wrong: flip(seen[wrong])}
                await runner.decide(parked.run_id, "check", "correct", fixed)
        return answered

    # a answers everything (a cascade that accepts any answer), then b does
    cascade = "strategy: cascade, threshold: 0, candidates: "
    assert asyncio.run(history(cascade + "[a, b]", "first")) == {"a"}
    assert asyncio.run(history(cascade + "[b, a]", "second")) == {"b"}

    file = tmp_path / "wf.yaml"
    file.write_text(
        ROUTED.format(router="strategy: most_accurate, candidates: [a, b], outcomes: {seed: 0}"),
        encoding="utf-8",
    )

    async def routed() -> dict[str, str]:
        async with relayflow.Runner(relayflow.load_workflow(file), store=store) as runner:
            parked = await runner.run({"x": 0.3})
            assert runner.store is not None
            steps = runner.store.steps(parked.run_id)
            return {s.step: s.versions.get("answered_by", "") for s in steps}

    answered = asyncio.run(routed())
    assert answered["first"].startswith("b=b.joblib@")
    assert answered["second"].startswith("a=a.joblib@")


def test_a_repeated_lookup_reuses_the_router_until_a_candidate_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("sklearn")
    import os

    from sklearn.linear_model import LogisticRegression

    path = _train(tmp_path, "small", LogisticRegression())
    spec = _spec(
        """\
        models:
          small: {provider: sklearn, model: small.joblib}
          gate: {provider: router, strategy: fastest, candidates: [small]}
        workflow:
          - {name: score, type: inference, model: gate, features: [x]}
        """,
        tmp_path,
    )
    builds: list[str] = []
    full = registry._build

    def counted(alias: str, *args: Any) -> Any:
        builds.append(alias)
        return full(alias, *args)

    monkeypatch.setattr(registry, "_build", counted)
    gate = build_provider("gate", spec.models["gate"], tmp_path)
    assert all(build_provider("gate", spec.models["gate"], tmp_path) is gate for _ in range(3))
    assert builds == ["gate", "small"]  # the router, and its candidate once
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # promoted in place
    again = build_provider("gate", spec.models["gate"], tmp_path)
    assert again is not gate and builds == ["gate", "small"] * 2
    path.unlink()
    with pytest.raises(ProviderError, match="model file .* does not exist"):
        build_provider("gate", spec.models["gate"], tmp_path)


def test_a_store_that_cannot_be_read_leaves_the_prior(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = router("most_accurate", [Scripted("a"), Scripted("b")])
    asyncio.run(r.watch(f"sqlite:///{tmp_path}", "wf", "ask", "label"))  # a folder, not a file
    assert r._feed_of[("wf", "ask")].loads == 0
    assert "router outcomes: cannot read" in caplog.text
    assert set(_shares(r, 20).values()) != {0, 20}  # no outcomes: both get calls
    asyncio.run(r.close())
