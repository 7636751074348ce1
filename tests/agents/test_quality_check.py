"""Tests of the quality check agent: ruleset violations, confidence threshold, each on_failure."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from relayflow.agents.base import BuildContext
from relayflow.agents.quality_check import QualityCheckAgent, QualityCheckConfig, check_ruleset_file
from relayflow.core.handoff import Handoff
from relayflow.core.result import Result, StepInfo
from relayflow.errors import AgentError
from tests.agents.fakes import FakeProvider

STEP = StepInfo(run_id="r1", step="check", attempt=1)

RULESET = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "summary": {"type": "string", "minLength": 5},
        "email": {"type": "string", "format": "email"},
        "score": {"type": "number", "maximum": 1},
    },
    "required": ["summary", "score"],
}


def write_ruleset(tmp_path: Path, schema: Any = RULESET, name: str = "rules.json") -> Path:
    (tmp_path / "validators").mkdir(exist_ok=True)
    path = tmp_path / "validators" / name
    path.write_text(json.dumps(schema) if not isinstance(schema, str) else schema, "utf-8")
    return path


def build(
    tmp_path: Path,
    reviewers: dict[str, tuple[str, ...]] | None = None,
    **settings: Any,
) -> QualityCheckAgent:
    config = QualityCheckConfig(name="check", type="quality_check", **settings)
    ctx = BuildContext(
        base_dir=tmp_path,
        workflow_file=None,
        get_provider=lambda alias: FakeProvider(),
        reviewers_downstream=reviewers or {},
    )
    agent = QualityCheckAgent(config, ctx)
    asyncio.run(agent.prepare())
    return agent


def run(agent: QualityCheckAgent, data: dict[str, Any], confidence: float | None = None) -> Result:
    return asyncio.run(agent.run(Handoff(data=data, confidence=confidence), STEP))


GOOD = {"summary": "All fine here", "score": 0.5, "email": "a@example.com"}


def test_passing_item_is_unchanged(tmp_path: Path) -> None:
    write_ruleset(tmp_path)
    agent = build(tmp_path, ruleset="validators/rules.json")
    result = run(agent, GOOD, confidence=0.9)
    assert result == Result(data=GOOD, confidence=0.9)


def test_all_violations_are_listed(tmp_path: Path) -> None:
    write_ruleset(tmp_path)
    agent = build(tmp_path, ruleset="validators/rules.json", on_failure="fail")
    result = run(agent, {"summary": "no", "score": 3, "email": "not-an-email"}, confidence=0.62)
    assert result.verdict == "fail"
    assert result.reason == "; ".join(
        [
            "$.email: 'not-an-email' is not a 'email'",
            "$.score: 3 is greater than the maximum of 1",
            "$.summary: 'no' is too short",
            "confidence 0.62 < 0.85",
        ]
    )
    assert result.data == {"summary": "no", "score": 3, "email": "not-an-email"}
    assert result.confidence == 0.62
    assert result.flags == ()


def test_missing_required_field_is_a_violation(tmp_path: Path) -> None:
    write_ruleset(tmp_path)
    result = run(build(tmp_path, ruleset="validators/rules.json", on_failure="retry"), {})
    assert result.verdict == "retry"
    assert result.reason == "$: 'score' is a required property; $: 'summary' is a required property"


def test_confidence_threshold_alone(tmp_path: Path) -> None:
    agent = build(tmp_path, min_confidence=0.7)
    assert run(agent, {"x": 1}, confidence=0.7).verdict == "ok"
    assert run(agent, {"x": 1}).verdict == "ok"  # no confidence reported upstream: nothing to check
    low = run(agent, {"x": 1}, confidence=0.69)
    assert (low.verdict, low.reason) == ("escalate", "confidence 0.69 < 0.7")


def test_field_checks_one_value_of_the_handoff(tmp_path: Path) -> None:
    write_ruleset(tmp_path, {"type": "string", "enum": ["billing", "technical"]}, "intent.json")
    agent = build(tmp_path, ruleset="validators/intent.json", field="intent", on_failure="fail")
    assert run(agent, {"intent": "billing", "other": 1}).verdict == "ok"
    bad = run(agent, {"intent": "sales"})
    assert bad.reason == "$: 'sales' is not one of ['billing', 'technical']"
    missing = run(agent, {"other": 1})
    assert missing.reason == "intent: missing from the handoff"


def test_escalate_without_reviewer_parks_here(tmp_path: Path) -> None:
    write_ruleset(tmp_path)
    agent = build(tmp_path, reviewers={"check": ()}, ruleset="validators/rules.json")
    result = run(agent, {"summary": "long enough", "score": 2})
    assert result.verdict == "escalate"
    assert result.reason == "$.score: 2 is greater than the maximum of 1"
    assert result.flags == ()


def test_escalate_with_reviewer_downstream_flags_and_passes(tmp_path: Path) -> None:
    write_ruleset(tmp_path)
    agent = build(tmp_path, reviewers={"check": ("Review",)}, ruleset="validators/rules.json")
    result = run(agent, {"summary": "long enough", "score": 2}, confidence=0.5)
    assert result.verdict == "ok"
    assert result.reason == ""
    assert result.flags == ("$.score: 2 is greater than the maximum of 1; confidence 0.5 < 0.85",)


@pytest.mark.parametrize("on_failure", ["retry", "fail"])
def test_reviewer_downstream_does_not_soften_retry_or_fail(tmp_path: Path, on_failure: str) -> None:
    agent = build(tmp_path, reviewers={"check": ("Review",)}, on_failure=on_failure)
    result = run(agent, {}, confidence=0.1)
    assert (result.verdict, result.flags) == (on_failure, ())


def test_versions_hash_the_ruleset_file(tmp_path: Path) -> None:
    path = write_ruleset(tmp_path)
    agent = build(tmp_path, ruleset=str(path))
    assert agent.versions() == {"ruleset": hashlib.sha256(path.read_bytes()).hexdigest()[:12]}
    write_ruleset(tmp_path, {**RULESET, "required": ["summary"]})
    assert build(tmp_path, ruleset=str(path)).versions() != agent.versions()
    assert build(tmp_path).versions() == {}


def test_invalid_schema_names_file_and_problem(tmp_path: Path) -> None:
    path = write_ruleset(tmp_path, {"type": "object", "properties": {"a": {"type": 5}}})
    with pytest.raises(AgentError, match=r"rules\.json: not a valid JSON Schema: 5 is not valid"):
        build(tmp_path, ruleset="validators/rules.json")
    problem = check_ruleset_file(path)
    assert problem is not None and "rules.json" in problem and "not a valid JSON Schema" in problem


def test_bad_json_and_missing_file(tmp_path: Path) -> None:
    bad = write_ruleset(tmp_path, '{"type": "object",\n  oops}')
    with pytest.raises(AgentError, match=r"rules\.json:2: not valid JSON"):
        build(tmp_path, ruleset="validators/rules.json")
    assert check_ruleset_file(bad) == (
        f"ruleset: {bad}:2: not valid JSON: Expecting property name enclosed in double quotes "
        "— fix the JSON syntax"
    )
    problem = check_ruleset_file(tmp_path / "nope.json")
    assert problem is not None and "cannot read" in problem and "nope.json" in problem
    with pytest.raises(AgentError, match=r"cannot read .*nope\.json"):
        build(tmp_path, ruleset="nope.json")


def test_check_ruleset_file_accepts_a_valid_schema(tmp_path: Path) -> None:
    assert check_ruleset_file(write_ruleset(tmp_path)) is None
    assert check_ruleset_file(write_ruleset(tmp_path, "[1, 2]", "list.json")) is not None


def test_draft_is_taken_from_dollar_schema(tmp_path: Path) -> None:
    # exclusiveMaximum is a boolean in draft 4 and a number in draft 2020-12
    draft4 = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "maximum": 1,
        "exclusiveMaximum": True,
    }
    write_ruleset(tmp_path, draft4, "d4.json")
    agent = build(tmp_path, ruleset="validators/d4.json", field="x", on_failure="fail")
    assert run(agent, {"x": 0.5}).verdict == "ok"
    assert run(agent, {"x": 1}).verdict == "fail"
    write_ruleset(tmp_path, {**draft4, "$schema": RULESET["$schema"]}, "d2020.json")
    with pytest.raises(AgentError, match="not a valid JSON Schema"):
        build(tmp_path, ruleset="validators/d2020.json")


def _lineage(*steps: tuple[str, float | None]) -> Handoff:
    from relayflow.core.handoff import LineageEntry

    entries = tuple(LineageEntry(name, "inference", {}, c) for name, c in steps)
    latest = next((c for _, c in reversed(steps) if c is not None), None)
    return Handoff(data={"x": 1}, lineage=entries, confidence=latest)


def test_confidence_of_judges_the_named_step_not_the_latest(tmp_path: Path) -> None:
    agent = build(tmp_path, min_confidence=0.8, confidence_of="Classify")
    # the label was sure, the generated reply after it was not: the label's confidence decides
    sure = asyncio.run(agent.run(_lineage(("Classify", 0.93), ("Draft", 0.41)), STEP))
    assert sure.verdict == "ok"
    unsure = asyncio.run(agent.run(_lineage(("Classify", 0.42), ("Draft", 0.97)), STEP))
    assert (unsure.verdict, unsure.reason) == ("escalate", "Classify confidence 0.42 < 0.8")


def test_the_default_names_the_step_that_set_the_confidence(tmp_path: Path) -> None:
    agent = build(tmp_path, min_confidence=0.8)
    # a check that passed the confidence on does not own it
    handoff = _lineage(("Classify", 0.9), ("Draft", 0.5), ("Check", 0.5))
    result = asyncio.run(agent.run(handoff, STEP))
    assert result.reason == "Draft confidence 0.5 < 0.8"
