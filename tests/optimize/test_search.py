"""The search on the quiz workflow (a fake model at the provider boundary, real bench, store
and cache): the front, the holdout confirmation, the overlay, the budget and the seed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from relayflow.optimize.overlay import write_overlay
from relayflow.optimize.search import Outcome, optimize, settings_of
from relayflow.spec.loader import load_spec
from relayflow.spec.variants import variant_workflow
from tests.optimize.quiz import quiz

SAME_PRICE = "smart: {provider: quiz, skill: 0.8, price: {per_call: 0.001}}"


def run(path: Path, out: Path, **options: object) -> Outcome:
    workflow = load_spec(path)
    settings = settings_of(workflow, **options)
    return asyncio.run(optimize(workflow, out=out, store=str(out / "runs.db"), settings=settings))


def front_of(outcome: Outcome) -> list[tuple[object, ...]]:
    return [
        (
            p.number,
            tuple(sorted(p.params.items())),
            tuple(sorted((k, v.value, v.low, v.high) for k, v in p.values.items())),
        )
        for p in outcome.front
    ]


def test_a_better_setting_is_chosen_confirmed_on_the_holdout_and_written_as_an_overlay(
    tmp_path: Path,
) -> None:
    path = quiz(tmp_path, "optimize: {objectives: [agent_metric, cpw, utilization]}", items=80)
    path.write_text(
        path.read_text().replace(
            "smart: {provider: quiz, skill: 0.8, price: {per_call: 0.01}}", SAME_PRICE
        )
    )
    outcome = run(path, tmp_path / "out", trials=6, limit=20)
    assert outcome.baseline.params == {"Answer.model": "cheap", "Check.min_confidence": 0.9}
    assert outcome.chosen is not None and outcome.chosen.params["Answer.model"] == "smart"
    # every point carries an interval around its value
    for point in outcome.front:
        for value in point.values.values():
            if value.value is not None:
                assert value.low is not None and value.high is not None
                assert value.low - 1e-12 <= value.value <= value.high + 1e-12
    assert outcome.holdout is not None and outcome.holdout.recommended, outcome.holdout
    gain = next(g for g in outcome.holdout.gains if g.objective == "agent_metric")
    assert gain.low > 0
    overlay = tmp_path / "out" / "optimized.yaml"
    loaded = write_overlay(load_spec(path), outcome, outcome.chosen, overlay, share=0.25)
    assert loaded.extends is not None and loaded.extends.resolve() == path.resolve()
    assert [(v.name, v.weight) for v in loaded.spec.variants] == [
        ("baseline", 0.75),
        ("optimized", 0.25),
    ]
    optimized = variant_workflow(loaded, "optimized")
    assert optimized.agents[1].model_dump()["model"] == "smart"
    assert variant_workflow(loaded, "baseline").agents[1].model_dump()["model"] == "cheap"


def test_the_same_seed_and_cache_give_the_same_front(tmp_path: Path) -> None:
    path = quiz(tmp_path, "optimize: {objectives: [metric, cpw, ttr, utilization]}")
    first = run(path, tmp_path / "out", trials=6, limit=12, seed=7)
    again = run(path, tmp_path / "out", trials=6, limit=12, seed=7)
    assert front_of(first) == front_of(again)
    assert [p.params for p in first.points] == [p.params for p in again.points]
    # the second search was answered by the cache: nothing was spent on models
    assert again.pilot_calls == 0 and again.spent_calls == 0
    assert first.pilot_calls == 12


def test_another_seed_tries_other_settings(tmp_path: Path) -> None:
    path = quiz(tmp_path)
    one = run(path, tmp_path / "a", trials=5, limit=8, seed=1)
    two = run(path, tmp_path / "b", trials=5, limit=8, seed=2)
    assert [p.params for p in one.points[1:]] != [p.params for p in two.points[1:]]


def test_a_hard_budget_stops_cleanly_with_the_front_so_far(tmp_path: Path) -> None:
    path = quiz(tmp_path)
    outcome = run(path, tmp_path / "out", trials=10, limit=12, max_calls=30)
    assert outcome.stopped is not None and "--max-calls 30" in outcome.stopped
    assert outcome.pilot_calls + outcome.spent_calls <= 30
    assert outcome.front and outcome.front[0].number == 0


def test_the_estimate_is_announced_from_the_baseline(tmp_path: Path) -> None:
    outcome = run(quiz(tmp_path), tmp_path / "out", trials=4, limit=10)
    estimate = outcome.estimate
    # one model step of 10 items: a trial that changes the model re-runs 10 calls
    assert estimate.trial_calls == 10
    assert estimate.trials == 3
    # only one other model exists, so about one trial's calls; plus the holdout (2 x 10)
    assert 20 <= estimate.calls <= 30
