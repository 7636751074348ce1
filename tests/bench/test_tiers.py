"""Tiers of a routed step in the bench: which router candidate, or a person, answered each
item and the accuracy of each; from synthetic events, then a real bench of a scikit-learn
cascade with a review gate, through the table, bench.json and report.html."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from relayflow.bench.collector import Collector
from relayflow.bench.runner import BenchOptions, WorkflowBench, bench_workflow
from relayflow.bench.tiers import PERSON, step_tiers, tier_of
from relayflow.core import events as ev
from relayflow.core.result import Usage
from relayflow.learn.references import References
from relayflow.schema.file import EvaluateSpec
from relayflow.spec.loader import load_spec

EVALUATE = EvaluateSpec(metric="accuracy", prediction="label", reference="expected")


def _finished(
    run_id: str, step: str, at: float, actor: ev.Actor = "agent", answered_by: str | None = None
) -> ev.StepFinished:
    versions = {"answered_by": answered_by} if answered_by else {}
    return ev.StepFinished(
        run_id, step, "inference", 1, at, at + 1, {}, None, Usage(), versions, (), actor
    )


def _run(
    collector: Collector,
    run_id: str,
    answered_by: str,
    label: str,
    expected: str,
    review: str | None = None,
) -> None:
    """A run whose step Score is answered by ``answered_by``; a person decides at ``review``
    ("after" or "before" Score) and the output ends with ``label``."""
    handle = collector.handle
    handle(ev.RunStarted(run_id, "wf", "v1", {}, 0.0, "b1", run_id))
    if review == "before":
        handle(_finished(run_id, "Check", 1.0, actor="human"))
    handle(_finished(run_id, "Score", 3.0, answered_by=answered_by))
    if review == "after":
        handle(_finished(run_id, "Review", 5.0, actor="human"))
    output = {"label": label, "expected": expected}
    handle(ev.RunFinished(run_id, "succeeded", output, None, 9.0))


def test_each_item_s_tier_is_the_candidate_that_answered_or_the_person_after_it(
    tmp_path: Path,
) -> None:
    collector = Collector(measuring=True)
    _run(collector, "r1", "small=s-v1", "yes", "yes")
    _run(collector, "r2", "small=s-v2", "no", "yes")  # retrained: another version, same tier
    _run(collector, "r3", "big=b-v1", "yes", "yes", review="before")  # decided before Score
    _run(collector, "r4", "big=b-v1", "no", "no", review="after")
    _run(collector, "r5", "small=s-v1", "yes", "yes", review="after")
    collector.handle(ev.RunStarted("r6", "wf", "v1", {}, 0.0, "b1", "r6"))  # Score never ran
    runs = {r.run_id: r for r in collector.runs()}
    assert runs["r1"].answered_by == {"Score": "small=s-v1"}
    assert [tier_of(runs[r], "Score") for r in sorted(runs)] == (
        ["small", "small", "big", PERSON, PERSON, None]
    )
    routed = {"Score": ("gate", ("small", "big", "unused"))}
    (step,) = step_tiers(list(runs.values()), EVALUATE, References(EVALUATE, tmp_path), routed)
    assert (step.step, step.model, step.items) == ("Score", "gate", 5)
    tiers = {t.name: t for t in step.tiers}
    assert list(tiers) == ["small", "big", "unused", PERSON]
    assert (tiers["small"].items, tiers["small"].share) == (2, pytest.approx(0.4))
    assert tiers["small"].accuracy.value == pytest.approx(0.5)
    assert tiers["small"].versions == ("small=s-v1", "small=s-v2")
    assert tiers["small"].escalated == 1 and tiers["big"].escalated == 1
    assert tiers["big"].accuracy.value == 1.0 and tiers["unused"].items == 0
    assert tiers["unused"].accuracy.value is None
    assert tiers[PERSON].items == 2 and tiers[PERSON].accuracy.value == 1.0


def test_a_step_that_names_who_answered_counts_without_being_declared(tmp_path: Path) -> None:
    collector = Collector(measuring=True)
    _run(collector, "r1", "outer=inner=v1", "yes", "no")
    (step,) = step_tiers(collector.runs(), EVALUATE, References(EVALUATE, tmp_path))
    assert step.model is None and [t.name for t in step.tiers] == ["outer"]
    assert step.tiers[0].accuracy.value == 0.0


CASCADE = """\
name: cascade
models:
  small: {provider: sklearn, model: small.joblib, price: {per_call: 0.001}}
  big: {provider: sklearn, model: big.joblib, price: {per_call: 0.01}}
  gate: {provider: router, strategy: cascade, candidates: [small, big], threshold: 0.8}
workflow:
  - {name: Items, type: retrieval, source: items.jsonl}
  - {name: Score, type: inference, model: gate, features: [x], output: label,
     output_field: label}
  - {name: Review, type: human_review, when: "confidence < 0.85"}
evaluate: {metric: accuracy, prediction: label, reference: expected}
"""


def _cascade(folder: Path) -> Path:
    """Two real models on one feature: a logistic regression that is unsure near the middle
    and a gradient boosting model; labels with noise the models cannot know."""
    import joblib
    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(200, 1))
    y = np.where(x[:, 0] > 0.5, "yes", "no")
    flip = rng.uniform(size=200) < 0.1
    y = np.where(flip, np.where(y == "yes", "no", "yes"), y)
    joblib.dump(LogisticRegression(C=3.0).fit(x, y), folder / "small.joblib")
    joblib.dump(GradientBoostingClassifier(random_state=0).fit(x, y), folder / "big.joblib")
    # the items: new values, a fifth of them with the other label (so no tier is perfect)
    values = rng.uniform(0, 1, size=60)
    wrong = rng.uniform(size=60) < 0.2
    items = [
        {"id": i, "x": float(v), "expected": "yes" if (v > 0.5) != bool(w) else "no"}
        for i, (v, w) in enumerate(zip(values, wrong, strict=True))
    ]
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    path = folder / "wf.yaml"
    path.write_text(CASCADE)
    return path


def _bench(path: Path) -> WorkflowBench:
    options = BenchOptions(limit=60, warmup=0, concurrency=2)
    store = str(path.parent / "runs.db")
    return asyncio.run(bench_workflow(load_spec(path), store=store, options=options))


def test_a_cascade_bench_shows_each_tier_s_share_and_accuracy(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    result = _bench(_cascade(tmp_path))
    (step,) = result.tiers
    assert (step.step, step.model, step.items) == ("Score", "gate", 60)
    tiers = {t.name: t for t in step.tiers}
    assert list(tiers) == ["small", "big", PERSON]
    assert all(t.items > 0 for t in step.tiers)
    assert sum(t.items for t in step.tiers) == 60
    assert sum(t.share for t in step.tiers) == pytest.approx(1.0)
    # each tier's accuracy, counted here from the runs themselves
    by_tier: dict[str, list[bool]] = {}
    for run in result.runs:
        output: dict[str, Any] = dict(run.output or {})
        tier = tier_of(run, "Score")
        assert tier is not None
        by_tier.setdefault(tier, []).append(output["label"] == output["expected"])
        if tier != PERSON:  # nobody reviewed it: the candidate's answer is the output
            assert run.answered_by["Score"].startswith(f"{tier}={tier}.joblib@")
            assert run.human_steps == 0
    for name, right in by_tier.items():
        assert tiers[name].accuracy.value == pytest.approx(sum(right) / len(right)), name
        assert tiers[name].items == len(right)
    assert tiers[PERSON].accuracy.value == 1.0  # the golden reviewer corrects what it decides
    assert result.reviews is not None and result.reviews.total == tiers[PERSON].items
    assert tiers["small"].escalated + tiers["big"].escalated == tiers[PERSON].items
    before = tiers[PERSON].before_review
    assert before is not None and before.value is not None and before.value < 1.0
    assert before.value == pytest.approx(1 - result.reviews.corrected / tiers[PERSON].items)
    # the small model answers only what it is sure of: it is asked every item, big the rest
    assert tiers["small"].items < 60 - tiers["big"].items


def test_the_tiers_show_in_the_table_the_json_and_the_html(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from rich.console import Console

    from relayflow.bench.report import render_html, to_json
    from relayflow.bench.tier_report import render_tiers

    result = _bench(_cascade(tmp_path))
    console = Console(record=True, width=200, file=io.StringIO())
    render_tiers([result], console)
    text = console.export_text()
    assert "tiers: who answered the items of each routed step" in text
    shares = {t.name: t for t in result.tiers[0].tiers}
    for name in ("small", "big", PERSON):
        line = next(row for row in text.splitlines() if f" {name} " in row and "of 60" in row)
        assert f"{shares[name].items} of 60" in line, line
    data = json.loads(json.dumps(to_json([result], {}), default=str))
    (workflow,) = data["workflows"]
    (step,) = workflow["tiers"]
    assert [t["name"] for t in step["tiers"]] == ["small", "big", PERSON]
    assert step["tiers"][0]["accuracy"]["value"] == shares["small"].accuracy.value
    assert {run["tiers"]["Score"] for run in workflow["runs"]} == {"small", "big", PERSON}
    assert all(run["answered_by"]["Score"] for run in workflow["runs"])
    page = render_html([result], {"reviewer": "golden"})
    assert "<h2>Tiers</h2>" in page and "<td>person</td>" in page
    pytest.importorskip("matplotlib")
    assert 'alt="tiers" src="data:image/png;base64,' in page


def test_a_workflow_without_a_router_has_no_tiers_section(tmp_path: Path) -> None:
    from rich.console import Console

    from relayflow.bench.report import render_html
    from relayflow.bench.tier_report import render_tiers
    from tests.bench.test_bench_runner import bench, numbers

    result = bench(numbers(tmp_path), str(tmp_path / "runs.db"))
    assert result.tiers == ()
    console = Console(record=True, file=io.StringIO())
    render_tiers([result], console)
    assert console.export_text() == ""
    assert "Tiers" not in render_html([result], {})
