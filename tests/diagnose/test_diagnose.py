"""The diagnosis of real runs: a workflow of transform scripts, a schema check and a review gate
benched into SQLite with the golden reviewer; and hand-timed events written to a real store,
where the TTR and cost shares are known exactly."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from relayflow.bench.runner import BenchOptions, bench_workflow
from relayflow.core import events as ev
from relayflow.core.result import Usage
from relayflow.diagnose.diagnosis import Diagnosis, diagnose
from relayflow.diagnose.knobs import step_knobs
from relayflow.diagnose.report import to_json
from relayflow.schema.workflow import Workflow
from relayflow.spec.loader import load_spec
from relayflow.store.sql_store import SqlStore

#: labels high above 5 with a bug at 9, and a label the schema refuses for 4
LABEL = """
def transform(record):
    value = record["value"]
    label = "??" if value == 4 else ("high" if value > 5 and value != 9 else "low")
    return {**record, "label": label}
"""
#: fails on every attempt for item f
FINISH = """
def transform(record):
    if record["id"] == "f":
        raise ValueError("cannot finish f")
    return {**record, "done": True}
"""
RULESET = {"type": "object", "properties": {"label": {"enum": ["high", "low"]}}}
WORKFLOW = """
name: graded
evaluate:
  golden: golden.jsonl
  metric: accuracy
  key: id
  prediction: label
  reference: label
workflow:
  - name: Items
    type: retrieval
    source: items.jsonl
  - name: Label
    type: transform
    script: label.py
    run_in: inline
  - name: Check
    type: quality_check
    ruleset: rules.json
    on_failure: escalate
  - name: Review
    type: human_review
  - name: Audit
    type: human_review
    when: "value > 5"
  - name: Finish
    type: transform
    script: finish.py
    run_in: inline
    retry: {attempts: 2, backoff: 0}
"""
#: (id, value, golden label). Label is wrong for c (the bug), d (golden disagrees) and g (??);
#: Check flags g, which Review (no when:) parks; Audit parks b, c and e (its when:); Finish
#: fails f twice.
ITEMS = [("a", 1, "low"), ("b", 7, "high"), ("c", 9, "high"), ("d", 3, "high")]
ITEMS += [("e", 8, "high"), ("f", 2, "low"), ("g", 4, "low")]


def graded(folder: Path) -> Path:
    rows = [{"id": i, "value": v} for i, v, _g in ITEMS]
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    golden = [{"id": i, "label": g} for i, _v, g in ITEMS]
    (folder / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in golden))
    (folder / "label.py").write_text(LABEL)
    (folder / "finish.py").write_text(FINISH)
    (folder / "rules.json").write_text(json.dumps(RULESET))
    path = folder / "workflow.yaml"
    path.write_text(WORKFLOW)
    return path


def benched(folder: Path) -> tuple[Workflow, str]:
    """The workflow benched once (golden reviewer, no warm-up) into a SQLite store."""
    workflow = load_spec(graded(folder))
    url = f"sqlite:///{folder}/runs.db"
    options = BenchOptions(limit=50, warmup=0, concurrency=1)
    asyncio.run(bench_workflow(workflow, store=url, options=options))
    return workflow, url


def diagnosed(workflow: Workflow, url: str, objective: str | None = None) -> Diagnosis:
    store = SqlStore(url)
    try:
        runs = store.list_runs(workflow=workflow.name, limit=None)
        return diagnose(
            workflow,
            store,
            runs,
            source="test",
            location=url,
            objective=objective,  # type: ignore[arg-type]
        )
    finally:
        store.close()


def test_each_step_is_charged_what_it_caused(tmp_path: Path) -> None:
    workflow, url = benched(tmp_path)
    d = diagnosed(workflow, url)
    steps = {s.step: s for s in d.measured.steps}
    assert list(steps) == ["Items", "Label", "Check", "Review", "Audit", "Finish"]
    m = d.measured
    assert m.totals.runs == 7
    assert m.totals.by_status == {"succeeded": 6, "failed": 1}
    # escalations: Check's flag parked g (at Review, which has no when:), Audit's when: parked
    # b, c and e
    assert steps["Check"].escalations == 1 and steps["Audit"].escalations == 3
    assert steps["Review"].escalations == 0
    assert m.totals.escalated_runs == 4
    assert m.share("escalations", steps["Audit"]) == pytest.approx(0.75)
    # wrong answers: Label wrote c, d and g wrong; two of them a reviewer corrected
    assert steps["Label"].wrong == 3 and steps["Label"].corrected == 2
    assert sum(s.wrong for s in m.steps) == 3
    assert m.share("wrong", steps["Label"]) == pytest.approx(1.0)
    assert m.totals.judged == 7 and m.totals.agent_score == pytest.approx(4 / 7)
    # failures: both attempts of Finish on f
    assert steps["Finish"].failures == 2 and steps["Finish"].failed_runs == 1
    assert sum(s.failures for s in m.steps) == 2
    # the person's decisions are time at the gate that parked the run
    assert steps["Audit"].runs == 7 and steps["Finish"].runs == 7
    assert steps["Label"].review_seconds == 0
    # every step has a TTR share, and together they fit in the runs' time
    shares = [m.share("ttr", s) for s in m.steps]
    assert all(s is not None and 0 <= s <= 1 for s in shares)
    assert d.leaders["wrong"] == "Label" and d.leaders["escalations"] == "Audit"
    assert d.leaders["failures"] == "Finish"


def test_the_bottleneck_follows_the_rule_and_names_the_knobs(tmp_path: Path) -> None:
    workflow, url = benched(tmp_path)
    d = diagnosed(workflow, url)
    # failures come first: 2 failed attempts in 7 runs
    assert d.bottleneck is not None
    assert (d.bottleneck.step, d.bottleneck.objective) == ("Finish", "failures")
    assert d.bottleneck.chosen_by == "by the rule"
    assert "Finish has 100% of the failures" in d.bottleneck.reason

    by_escalations = diagnosed(workflow, url, "escalations").bottleneck
    assert by_escalations is not None and by_escalations.step == "Audit"
    assert by_escalations.share == pytest.approx(0.75)
    (gate,) = [k for k in by_escalations.knobs if k.kind == "escalation_threshold"]
    assert gate.setting == "Audit.when" and gate.current == "value > 5"

    by_wrong = diagnosed(workflow, url, "wrong").bottleneck
    assert by_wrong is not None and by_wrong.step == "Label"
    # a deterministic transform that is not cached: the optimizer would cache it
    assert [k.kind for k in by_wrong.knobs] == ["cache"]

    data = to_json(d)
    assert data["bottleneck"]["step"] == "Finish"
    assert data["steps"][1]["shares"]["wrong"] == pytest.approx(1.0)
    assert json.loads(json.dumps(data)) == data  # plain JSON


TIMED = """
name: timed
compute_rate_per_cpu_second: 0.01
models:
  small: {{provider: llama_cpp, price: {{input_per_1m: 0, output_per_1m: 0}}}}
  big: {{provider: llama_cpp, price: {{input_per_1m: 0, output_per_1m: 0}}}}
workflow:
  - name: Prepare
    type: transform
    script: prep.py
  - name: Classify
    type: inference
    model: small
    prompt: "Label: {{{{ text }}}}"
    output: label
    labels: [x, y]
    output_field: label
    max_tokens: 8
  - name: Gate
    type: quality_check
    min_confidence: 0.8
    on_failure: escalate
"""


def timed_store(folder: Path) -> tuple[Workflow, str]:
    """Three runs whose steps took exactly known times and costs, written as events."""
    (folder / "prep.py").write_text("def transform(record):\n    return record\n")
    path = folder / "workflow.yaml"
    path.write_text(TIMED.format())
    workflow = load_spec(path)
    url = f"sqlite:///{folder}/runs.db"
    store = SqlStore(url)
    # per run: Prepare 1 s, Classify 3 s costing $0.02 at confidence 0.5, Gate 0 s (run 4 s)
    for n in range(3):
        run, t0 = f"run{n}", 1000.0 + 10 * n
        data = {"id": n, "text": "t"}
        store.handle(ev.RunStarted(run, "timed", workflow.version, data, t0, "b1", str(n)))
        steps = [
            ("Prepare", "transform", 0.0, 1.0, data, None, Usage()),
            ("Classify", "inference", 1.0, 4.0, {**data, "label": "x"}, 0.5, Usage(cost=0.02)),
            ("Gate", "quality_check", 4.0, 4.0, {**data, "label": "x"}, 0.5, Usage()),
        ]
        for step, kind, start, end, output, confidence, usage in steps:
            finished = ev.StepFinished(
                run, step, kind, 1, t0 + start, t0 + end, output, confidence, usage, {}
            )
            store.handle(finished)
        store.handle(ev.RunFinished(run, "succeeded", {**data, "label": "x"}, None, t0 + 4))
    store.close()
    return workflow, url


def test_ttr_and_cost_shares_are_the_steps_parts_of_the_runs(tmp_path: Path) -> None:
    workflow, url = timed_store(tmp_path)
    d = diagnosed(workflow, url)
    m = d.measured
    steps = {s.step: s for s in m.steps}
    assert m.totals.run_seconds == pytest.approx(12.0)
    assert m.totals.ttr_median == pytest.approx(4.0)
    assert m.share("ttr", steps["Prepare"]) == pytest.approx(0.25)
    assert m.share("ttr", steps["Classify"]) == pytest.approx(0.75)
    assert steps["Classify"].median_seconds == pytest.approx(3.0)
    # cost: the model's $0.02 a run plus wall seconds x $0.01
    assert steps["Classify"].cost == pytest.approx(3 * (0.02 + 0.03))
    assert steps["Prepare"].cost == pytest.approx(3 * 0.01)
    assert m.share("cost", steps["Classify"]) == pytest.approx(0.15 / 0.18)
    # nothing failed, nothing was judged or escalated: TTR is the objective
    assert d.bottleneck is not None
    assert (d.bottleneck.step, d.bottleneck.objective) == ("Classify", "ttr")
    # the knobs that move TTR first, then the step's others (its prompt)
    kinds = [k.kind for k in d.bottleneck.knobs]
    assert kinds == ["model", "learned", "max_tokens", "compress", "prompt"]
    assert all(k.moves("ttr") for k in d.bottleneck.knobs[:4])
    assert not d.bottleneck.knobs[4].moves("ttr")
    model = d.bottleneck.knobs[0]
    assert model.tries.endswith("big") and model.current == "small (llama_cpp)"
    assert [k.kind for k in step_knobs(workflow, workflow.agents[0])] == ["cache"]


def test_an_escalating_gate_points_at_the_confidence_it_reads(tmp_path: Path) -> None:
    workflow, url = timed_store(tmp_path)
    store = SqlStore(url)
    try:
        # run3 parks at Gate on Classify's confidence
        data = {"id": 3, "text": "t"}
        store.handle(ev.RunStarted("run3", "timed", workflow.version, data, 2000.0, "b1", "3"))
        out = {**data, "label": "y"}
        for step, kind, conf in (("Prepare", "transform", None), ("Classify", "inference", 0.4)):
            store.handle(
                ev.StepFinished("run3", step, kind, 1, 2000.0, 2001.0, out, conf, Usage(), {})
            )
        store.handle(
            ev.StepEscalated(
                run_id="run3",
                step="Gate",
                agent_type="quality_check",
                workflow="timed",
                reason="confidence 0.4 < 0.8",
                input=out,
                output=out,
                confidence=0.4,
                usage=Usage(),
                versions={},
                ts=2001.0,
            )
        )
    finally:
        store.close()
    d = diagnosed(workflow, url, "escalations")
    assert d.bottleneck is not None and d.bottleneck.step == "Gate"
    assert "comes from Classify" in d.bottleneck.reason
    kinds = [(k.step, k.kind) for k in d.bottleneck.knobs]
    assert kinds[0] == ("Gate", "escalation_threshold")
    assert ("Classify", "learned") in kinds and ("Classify", "model") in kinds
    assert d.measured.totals.by_status.get("waiting_review") == 1


def test_a_cascade_and_a_gate_on_confidence_have_their_knobs() -> None:
    root = Path(__file__).resolve().parents[2] / "examples" / "fraud_detection"
    workflow = load_spec(root / "workflow_cascade.yaml")
    configs = {a.name: a for a in workflow.agents}
    score = {k.kind: k for k in step_knobs(workflow, configs["Score"])}
    assert set(score) == {"model", "cascade", "learned"}  # scores features: no prompt
    cascade = score["cascade"]
    assert cascade.setting == "models.phishing_cascade.threshold"
    assert "[phishing_small, phishing]" in cascade.current and "0.85" in cascade.current
    (gate,) = step_knobs(workflow, configs["GreyZone"])
    assert gate.kind == "escalation_threshold" and "0.7" in gate.tries
