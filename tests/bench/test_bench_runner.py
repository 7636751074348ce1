"""The bench runner on a workflow of real transform scripts with a golden set and a human review
step: the golden reviewer's decisions, accuracy, utilization, escalations, passes and warm-up."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from relayflow.bench.collector import RunMeasure
from relayflow.bench.reviewer import measure_accuracy
from relayflow.bench.runner import BenchOptions, WorkflowBench, bench_workflow
from relayflow.errors import RelayflowError
from relayflow.learn.references import References, load_golden
from relayflow.schema.file import EvaluateSpec
from relayflow.spec.loader import load_spec
from relayflow.store.sql_store import SqlStore

#: labels high above 5, with a bug at 9; the Review step asks a person about every value > 5
LABEL = """
def transform(record):
    value = record["value"]
    return {**record, "label": "high" if value > 5 and value != 9 else "low"}
"""
FINISH = """
def transform(record):
    return {**record, "done": True}
"""
WORKFLOW = """
name: numbers
{evaluate}
workflow:
  - name: Items
    type: retrieval
    source: items.jsonl
  - name: Label
    type: transform
    script: label.py
    run_in: inline
  - name: Review
    type: human_review
    when: "value > 5"
  - name: Finish
    type: transform
    script: finish.py
    run_in: inline
"""
GOLDEN_EVALUATE = """evaluate:
  golden: golden.jsonl
  metric: accuracy
  key: id
  prediction: label
  reference: label
"""
#: (id, value, golden label): b and e are escalated and right, c escalated and wrong (the bug),
#: d is wrong but not escalated, a and f are right
ITEMS = [("a", 1, "low"), ("b", 7, "high"), ("c", 9, "high"), ("d", 3, "high")]
ITEMS += [("e", 8, "high"), ("f", 2, "low")]


def numbers(folder: Path, evaluate: str = GOLDEN_EVALUATE, carry: bool = False) -> Path:
    rows = [{"id": i, "value": v, **({"expected": g} if carry else {})} for i, v, g in ITEMS]
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    golden = [{"id": i, "label": g} for i, _v, g in ITEMS]
    (folder / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in golden))
    (folder / "label.py").write_text(LABEL)
    (folder / "finish.py").write_text(FINISH)
    path = folder / "workflow.yaml"
    path.write_text(WORKFLOW.format(evaluate=evaluate))
    return path


def bench(path: Path, store: str, **options: object) -> WorkflowBench:
    settings = BenchOptions(**{"limit": 50, "warmup": 0, **options})  # type: ignore[arg-type]
    return asyncio.run(bench_workflow(load_spec(path), store=store, options=settings))


def test_the_golden_reviewer_approves_right_outputs_and_corrects_wrong_ones(
    tmp_path: Path, store_url: str
) -> None:
    result = bench(numbers(tmp_path), store_url)
    assert result.reviews is not None
    assert (result.reviews.approved, result.reviews.corrected, result.reviews.unjudged) == (
        2,
        1,
        0,
    )
    outputs = {r.item_key: r.output for r in result.runs}
    assert all(r.status == "succeeded" for r in result.runs)
    corrected = outputs["2:c"]
    assert corrected is not None and corrected["label"] == "high" and corrected["done"] is True
    store = SqlStore(store_url)
    try:
        decided = store.reviews(status=None)
        assert sorted(r.reviewer or "" for r in decided) == ["golden-reviewer"] * 3
        by_run = {r.run_id: r for r in decided}
        run_c = next(r for r in result.runs if r.item_key == "2:c")
        assert by_run[run_c.run_id].decision == "correct"
    finally:
        store.close()

    f = result.figures
    assert (f.runs, f.completed, f.parked, f.escalated) == (6, 6, 0, 3)
    assert f.escalation_rate == pytest.approx(0.5)
    assert f.utilization == pytest.approx(21 / 24)  # 4 steps a run; 3 decided by a person
    assert f.utilization is not None and f.utilization < 1
    assert result.accuracy.value == pytest.approx(5 / 6)  # only d stays wrong
    assert result.accuracy.n == 6 and result.accuracy.reason is None
    assert result.accuracy.low is not None and result.accuracy.high is not None
    assert result.accuracy.low <= 5 / 6 <= result.accuracy.high
    # before the reviewer corrected c, the agents had it wrong too
    assert result.agent_accuracy is not None
    assert result.agent_accuracy.value == pytest.approx(4 / 6)
    assert [s.step for s in result.steps] == ["Items", "Label", "Review", "Finish"]
    assert result.steps[2].human == 3


def test_without_a_reviewer_parked_runs_stay_parked_and_do_not_complete(tmp_path: Path) -> None:
    result = bench(numbers(tmp_path), str(tmp_path / "runs.db"), reviewer="none")
    assert result.reviews is None
    f = result.figures
    assert (f.runs, f.completed, f.parked) == (6, 3, 3)
    assert f.escalation_rate == pytest.approx(0.5)
    assert f.utilization == 1.0  # nobody decided a step
    assert result.accuracy.value == pytest.approx(2 / 3)  # a, d, f completed; d is wrong
    assert f.ttr_median is not None and f.cpw is not None


def test_passes_repeat_the_same_items_and_the_warmup_is_not_counted(tmp_path: Path) -> None:
    result = bench(numbers(tmp_path), str(tmp_path / "runs.db"), passes=2, warmup=2, limit=4)
    assert [(p.index, p.runs) for p in result.passes] == [(1, 4), (2, 4)]
    assert len(result.runs) == 8
    keys = sorted(r.item_key or "" for r in result.runs)
    assert keys == sorted(["0:a", "1:b", "2:c", "3:d"] * 2)
    assert {result.pass_of(r) for r in result.runs} == {1, 2}
    assert result.reviews is not None and result.reviews.total == 4  # b and c, twice
    assert result.accuracy.value == pytest.approx(6 / 8)


def test_a_reference_carried_in_the_output_serves_when_there_is_no_golden_set(
    tmp_path: Path,
) -> None:
    carried = "evaluate:\n  metric: accuracy\n  prediction: label\n  reference: expected\n"
    result = bench(numbers(tmp_path, carried, carry=True), str(tmp_path / "runs.db"))
    assert result.reviews is not None and result.reviews.corrected == 1
    assert result.accuracy.value == pytest.approx(5 / 6)
    assert "expected" in result.references


def test_a_workflow_without_evaluate_has_no_accuracy_and_says_why(tmp_path: Path) -> None:
    result = bench(numbers(tmp_path, evaluate=""), str(tmp_path / "runs.db"))
    assert result.accuracy.value is None
    assert result.accuracy.reason is not None and "evaluate" in result.accuracy.reason
    assert result.reviews is not None and result.reviews.unjudged == 3


def run(item: str, output: dict[str, object], status: str = "succeeded") -> RunMeasure:
    return RunMeasure(
        item, "b", item, status, 0.0, 1.0, 0.0, 0, 0, 0, 0.0, 1, 0, 0, 0, (), output, None
    )


def test_pass_at_k_takes_the_runs_of_one_item_as_its_samples(tmp_path: Path) -> None:
    spec = EvaluateSpec(metric="pass_at_k", prediction="passed")
    runs = [run("p1", {"passed": True}), run("p1", {"passed": False})]
    runs += [run("p2", {"passed": True}), run("p2", {"passed": True}), run("p3", {})]
    accuracy = measure_accuracy(spec, runs, References(spec, tmp_path))
    assert accuracy.value == pytest.approx((0.5 + 1.0) / 2)
    assert (accuracy.n, accuracy.unscored) == (2, 1)


def test_f1_gets_an_interval_from_resampled_items(tmp_path: Path) -> None:
    spec = EvaluateSpec(metric="f1", prediction="p", reference="r")
    pairs = [("x", "x"), ("x", "y"), ("y", "y"), ("y", "y"), ("x", "x"), ("y", "x")]
    runs = [run(f"{i}", {"p": p, "r": r}) for i, (p, r) in enumerate(pairs)]
    runs.append(run("failed", {"p": "x", "r": "y"}, status="failed"))  # not completed
    accuracy = measure_accuracy(spec, runs, References(spec, tmp_path))
    assert accuracy.value == pytest.approx(2 / 3)  # macro F1 of x (2/3) and y (2/3)
    assert accuracy.n == 6
    low, value, high = accuracy.low, accuracy.value, accuracy.high
    assert low is not None and value is not None and high is not None
    assert 0.0 <= low < value < high <= 1.0


def test_a_golden_record_without_the_key_is_an_error_that_names_it(tmp_path: Path) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_text('{"id": "a", "label": "x"}\n{"label": "y"}\n')
    with pytest.raises(RelayflowError, match=r"record 2 has no 'id' field"):
        load_golden(path, EvaluateSpec(golden="golden.jsonl", reference="label"))
    with pytest.raises(RelayflowError, match="golden set not found"):
        load_golden(tmp_path / "missing.jsonl", EvaluateSpec(golden="missing.jsonl"))
