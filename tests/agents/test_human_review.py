"""Tests of the human review agent: the default rule, a custom ``when``, upstream flags."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from relayflow.agents.base import BuildContext
from relayflow.agents.human_review import HumanReviewAgent, HumanReviewConfig, check_expression
from relayflow.core.handoff import Handoff
from relayflow.core.result import Result, StepInfo
from relayflow.errors import AgentError
from tests.agents.fakes import FakeProvider

STEP = StepInfo(run_id="r1", step="review", attempt=1)


def build(tmp_path: Path, **settings: Any) -> HumanReviewAgent:
    config = HumanReviewConfig(name="review", type="human_review", **settings)
    ctx = BuildContext(
        base_dir=tmp_path, workflow_file=None, get_provider=lambda alias: FakeProvider()
    )
    agent = HumanReviewAgent(config, ctx)
    asyncio.run(agent.prepare())
    return agent


def run(
    agent: HumanReviewAgent,
    data: dict[str, Any],
    confidence: float | None = None,
    flags: tuple[str, ...] = (),
) -> Result:
    handoff = Handoff(data=data, confidence=confidence, flags=flags)
    return asyncio.run(agent.run(handoff, STEP))


def test_default_passes_a_confident_unflagged_item(tmp_path: Path) -> None:
    agent = build(tmp_path)
    assert run(agent, {"a": 1}, confidence=0.85) == Result(data={"a": 1}, confidence=0.85)
    assert run(agent, {"a": 1}) == Result(data={"a": 1})


def test_default_escalates_low_confidence(tmp_path: Path) -> None:
    result = run(build(tmp_path), {"a": 1}, confidence=0.62)
    assert result == Result(
        data={"a": 1}, confidence=0.62, verdict="escalate", reason="confidence 0.62 < 0.85"
    )


def test_default_escalates_flagged_items_with_the_flags_as_reason(tmp_path: Path) -> None:
    result = run(build(tmp_path), {"a": 1}, confidence=0.99, flags=("$.score: too big", "odd"))
    assert (result.verdict, result.reason) == ("escalate", "$.score: too big; odd")


def test_custom_when_over_data_confidence_and_flags(tmp_path: Path) -> None:
    agent = build(tmp_path, when="data.amount > 1000 or 'vip' in flags")
    assert run(agent, {"amount": 5}, confidence=0.1).verdict == "ok"  # when replaces the default
    high = run(agent, {"amount": 5000})
    assert (high.verdict, high.reason) == ("escalate", "when: data.amount > 1000 or 'vip' in flags")
    assert run(agent, {"amount": 5}, flags=("vip",)).verdict == "escalate"


def test_when_sees_top_level_keys_and_confidence(tmp_path: Path) -> None:
    agent = build(tmp_path, when="intent == 'refund' and confidence < 0.95")
    assert run(agent, {"intent": "refund"}, confidence=0.9).verdict == "escalate"
    assert run(agent, {"intent": "refund"}, confidence=0.99).verdict == "ok"
    assert run(agent, {"intent": "billing"}, confidence=0.5).verdict == "ok"


def test_when_with_an_undefined_name_is_an_error_not_false(tmp_path: Path) -> None:
    agent = build(tmp_path, when="data.amout > 1000")
    with pytest.raises(AgentError, match=r"'data.amout > 1000'.*has no attribute 'amout'"):
        run(agent, {"amount": 5})
    bare = build(tmp_path, when="nothing_here")
    with pytest.raises(AgentError, match="'nothing_here' is undefined"):
        run(bare, {"amount": 5})


def test_when_that_fails_to_evaluate_is_an_agent_error(tmp_path: Path) -> None:
    agent = build(tmp_path, when="confidence < 0.5")
    with pytest.raises(AgentError, match="TypeError"):
        run(agent, {})  # no confidence reported: None < 0.5


def test_invalid_when_is_rejected_at_prepare(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match=r"expression 'data.amount >' is invalid"):
        build(tmp_path, when="data.amount >")


def test_check_expression() -> None:
    assert check_expression("data.amount > 1000 and flags") is None
    assert check_expression("data.amount >") == "unexpected 'end of template'"
    assert check_expression("x | no_such_filter") == "No filter named 'no_such_filter'."


def test_when_cannot_escape_the_sandbox(tmp_path: Path) -> None:
    agent = build(tmp_path, when="data.__class__.__init__.__globals__")
    with pytest.raises(AgentError, match="SecurityError: access to attribute .* is unsafe"):
        run(agent, {})


def test_review_context(tmp_path: Path) -> None:
    agent = build(tmp_path, instructions="Check the refund amount.", show=["amount", "intent"])
    assert agent.review_context() == {
        "instructions": "Check the refund amount.",
        "show": ["amount", "intent"],
    }
    assert build(tmp_path).review_context() == {"instructions": None, "show": None}


def test_when_sees_each_step_s_confidence_by_name(tmp_path: Path) -> None:
    from relayflow.core.handoff import LineageEntry

    agent = build(tmp_path, when="confidences.Classify < 0.7")
    lineage = (LineageEntry("Classify", "inference", {}, 0.6), LineageEntry("Draft", "x", {}, 0.99))
    handoff = Handoff(data={"a": 1}, lineage=lineage, confidence=0.99)
    assert asyncio.run(agent.run(handoff, STEP)).verdict == "escalate"
    sure = handoff._replace(lineage=(LineageEntry("Classify", "inference", {}, 0.8),))
    assert asyncio.run(agent.run(sure, STEP)).verdict == "ok"
