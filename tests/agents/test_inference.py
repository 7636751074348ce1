"""Tests of the inference agent against a fake provider: prompts, output modes, usage, versions."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest

from relayflow.agents.base import BuildContext
from relayflow.agents.inference import InferenceAgent, InferenceConfig, content_free
from relayflow.core.handoff import Handoff
from relayflow.core.result import Result, StepInfo, Usage
from relayflow.errors import AgentError, ProviderTimeout
from relayflow.prompts.templates import prompt_hash
from relayflow.providers.base import Prediction, Price, Provider
from tests.agents.fakes import (
    FakeProvider,
    LabelScorer,
    completion,
)

STEP = StepInfo(run_id="r1", step="infer", attempt=1)


def build(tmp_path: Path, fake: Provider, **settings: Any) -> InferenceAgent:
    aliases: list[str] = []

    def get_provider(alias: str) -> Provider:
        aliases.append(alias)
        return fake

    config = InferenceConfig(name="infer", type="inference", model="smol", **settings)
    ctx = BuildContext(base_dir=tmp_path, workflow_file=None, get_provider=get_provider)
    agent = InferenceAgent(config, ctx)
    asyncio.run(agent.prepare())
    assert aliases == ["smol"]
    return agent


def run(agent: InferenceAgent, data: dict[str, Any], confidence: float | None = None) -> Result:
    return asyncio.run(agent.run(Handoff(data=data, run_id="r1", confidence=confidence), STEP))


def test_text_mode_renders_template_file_and_calls_provider(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "q.jinja").write_text(
        "Customer {{ data.name }} asks: {{ question }} ({{ confidence }})", encoding="utf-8"
    )
    fake = FakeProvider([completion("  Reset your password.\n", confidence=0.8)])
    agent = build(
        tmp_path,
        fake,
        prompt_template="templates/q.jinja",
        system="Be brief.",
        max_tokens=64,
        temperature=0.3,
    )
    result = run(agent, {"name": "Ann", "question": "login?"}, confidence=0.5)

    (request,) = fake.requests
    assert request.prompt == "Customer Ann asks: login? (0.5)"
    assert request.system == "Be brief."
    assert (request.max_tokens, request.temperature) == (64, 0.3)
    assert request.labels is None and request.json_schema is None
    assert result.data == {"name": "Ann", "question": "login?", "output": "Reset your password."}
    assert result.confidence == 0.8
    assert result.verdict == "ok"


def test_missing_variable_fails_before_calling_the_model(tmp_path: Path) -> None:
    fake = FakeProvider([completion("never")])
    agent = build(tmp_path, fake, prompt="Summarize {{ data.body }}")
    with pytest.raises(AgentError, match=r"<inline prompt>.*has no attribute 'body'"):
        run(agent, {"title": "t"})
    assert fake.requests == []


def test_usage_and_cost_come_from_completion_and_price(tmp_path: Path) -> None:
    fake = FakeProvider(
        [completion("hi", input_tokens=1000, output_tokens=500, seconds=1.5)],
        price=Price(input_per_1m=2.0, output_per_1m=8.0, per_call=0.001),
    )
    result = run(build(tmp_path, fake, prompt="say hi"), {})
    usage = result.usage
    assert (usage.input_tokens, usage.output_tokens, usage.model_calls) == (1000, 500, 1)
    assert usage.model_seconds == 1.5
    assert usage.cost == pytest.approx(1000 * 2.0 / 1e6 + 500 * 8.0 / 1e6 + 0.001)


def test_label_mode_uses_the_provider_label(tmp_path: Path) -> None:
    fake = FakeProvider([completion("billing (I think)", label="billing")])
    agent = build(
        tmp_path,
        fake,
        prompt="Classify: {{ text }}",
        output="label",
        labels=["billing", "technical"],
        output_field="intent",
    )
    result = run(agent, {"text": "charged twice"})
    assert fake.requests[0].labels == ["billing", "technical"]
    assert result.data["intent"] == "billing"


def test_an_abstention_is_no_answer_with_confidence_zero(tmp_path: Path) -> None:
    """A learned model short of labels answers no label, no text, confidence 0: the step
    records no answer rather than failing on an empty label, and its review gate escalates."""
    fake = FakeProvider([completion("", label=None, confidence=0.0)])
    agent = build(tmp_path, fake, prompt="x", output="label", labels=["billing", "technical"])
    result = run(agent, {})
    assert result.data["output"] is None and result.confidence == 0.0
    # an empty answer of unknown confidence is the model's failure, as before
    fake = FakeProvider([completion("", label=None, confidence=None)])
    agent = build(tmp_path, fake, prompt="x", output="label", labels=["billing", "technical"])
    with pytest.raises(AgentError, match="model answered ''"):
        run(agent, {})


def test_label_mode_accepts_text_that_is_a_label(tmp_path: Path) -> None:
    fake = FakeProvider([completion(" technical\n")])
    agent = build(tmp_path, fake, prompt="x", output="label", labels=["billing", "technical"])
    assert run(agent, {}).data["output"] == "technical"


def test_label_mode_rejects_a_provider_label_outside_the_set(tmp_path: Path) -> None:
    fake = FakeProvider([completion("billing", label="sales")])
    agent = build(tmp_path, fake, prompt="x", output="label", labels=["billing", "technical"])
    with pytest.raises(AgentError, match="model answered 'sales'"):
        run(agent, {})


def test_label_not_in_set_is_an_agent_error(tmp_path: Path) -> None:
    fake = FakeProvider([completion("refund")])
    agent = build(tmp_path, fake, prompt="x", output="label", labels=["billing", "technical"])
    with pytest.raises(AgentError, match="model answered 'refund', not one of the labels"):
        run(agent, {})


def test_label_mode_without_labels_is_rejected_at_prepare(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="output: label needs a list of labels"):
        build(tmp_path, FakeProvider(), prompt="x", output="label")


SCHEMA = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["pos", "neg"]}, "score": {"type": "number"}},
    "required": ["sentiment", "score"],
}


def test_json_mode_parses_and_validates_against_schema_file(tmp_path: Path) -> None:
    (tmp_path / "out.json").write_text(json.dumps(SCHEMA), encoding="utf-8")
    fake = FakeProvider([completion('```json\n{"sentiment": "pos", "score": 0.9}\n```')])
    agent = build(tmp_path, fake, prompt="x", output="json", output_schema="out.json")
    result = run(agent, {"id": 3})
    assert fake.requests[0].json_schema == SCHEMA
    assert result.data == {"id": 3, "output": {"sentiment": "pos", "score": 0.9}}


def test_json_mode_invalid_json_shows_the_start_of_the_answer(tmp_path: Path) -> None:
    text = "Sure! Here it is: {sentiment: pos" + "x" * 500
    fake = FakeProvider([completion(text)])
    agent = build(tmp_path, fake, prompt="x", output="json")
    with pytest.raises(AgentError, match="not valid JSON") as info:
        run(agent, {})
    assert "Sure! Here it is" in str(info.value)
    assert "x" * 200 not in str(info.value)


def test_json_mode_schema_violation_names_the_path(tmp_path: Path) -> None:
    fake = FakeProvider([completion('{"sentiment": "meh", "score": 1}')])
    agent = build(tmp_path, fake, prompt="x", output="json", output_schema=SCHEMA)
    with pytest.raises(AgentError, match=r"breaks output_schema at \$\.sentiment: 'meh' is not"):
        run(agent, {})


def test_json_mode_without_schema_accepts_any_json(tmp_path: Path) -> None:
    fake = FakeProvider([completion("[1, 2]")])
    result = run(build(tmp_path, fake, prompt="x", output="json"), {})
    assert result.data["output"] == [1, 2]
    assert fake.requests[0].json_schema is None


def test_invalid_output_schema_is_rejected_at_prepare(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"type": "no-such-type"}', encoding="utf-8")
    with pytest.raises(AgentError, match=r"output_schema .*bad\.json: not a valid JSON Schema"):
        build(tmp_path, FakeProvider(), prompt="x", output="json", output_schema="bad.json")


def test_prompt_and_template_are_mutually_exclusive(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="exactly one of prompt_template"):
        build(tmp_path, FakeProvider())
    (tmp_path / "t.jinja").write_text("x", encoding="utf-8")
    with pytest.raises(AgentError, match="exactly one of prompt_template"):
        build(tmp_path, FakeProvider(), prompt="x", prompt_template="t.jinja")


def test_missing_template_file_is_an_agent_error(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match=r"cannot read prompt template .*missing\.jinja"):
        build(tmp_path, FakeProvider(), prompt_template="missing.jinja")


def test_versions_follow_template_text_and_rendered_prompt(tmp_path: Path) -> None:
    path = tmp_path / "t.jinja"
    path.write_text("Q: {{ q }}", encoding="utf-8")
    fake = FakeProvider([completion("a"), completion("b")], name="smollm2", version="v7")
    first = build(tmp_path, fake, prompt_template="t.jinja")
    result = run(first, {"q": "why"})
    assert result.versions == {
        "prompt": prompt_hash("Q: why"),
        "model": "smollm2",
        "model_version": "v7",
    }
    path.write_text("Question: {{ q }}", encoding="utf-8")
    second = build(tmp_path, fake, prompt_template="t.jinja")
    assert first.versions()["model"] == second.versions()["model"] == "smol"
    assert first.versions()["template"] == prompt_hash("Q: {{ q }}")
    assert second.versions()["template"] == prompt_hash("Question: {{ q }}")
    assert run(second, {"q": "why"}).versions["prompt"] == prompt_hash("Question: why")


def test_provider_errors_pass_through_unchanged(tmp_path: Path) -> None:
    error = ProviderTimeout("smol did not answer in 60 s")
    fake = FakeProvider([error])
    with pytest.raises(ProviderTimeout) as info:
        run(build(tmp_path, fake, prompt="x"), {})
    assert info.value is error


def test_tabular_mode_predicts_from_features(tmp_path: Path) -> None:
    fake = FakeProvider(
        predictions=[
            Prediction(
                label="fraud",
                probabilities={"fraud": 0.7, "ok": 0.3},
                seconds=0.01,
                model="rf",
            )
        ],
        price=Price(per_call=0.0002),
    )
    agent = build(tmp_path, fake, features=["amount", "country"], output_field="verdict")
    result = run(agent, {"id": 9, "amount": 120.5, "country": "FR", "note": "x"})
    assert fake.rows == [{"amount": 120.5, "country": "FR"}]
    assert fake.requests == []
    assert result.data == {
        "id": 9,
        "amount": 120.5,
        "country": "FR",
        "note": "x",
        "verdict": "fraud",
        "verdict_probabilities": {"fraud": 0.7, "ok": 0.3},
    }
    assert result.confidence == 0.7
    assert result.usage == Usage(
        model_calls=1, model_seconds=0.01, cost=Price(per_call=0.0002).cost(0, 0)
    )
    assert result.versions == {"model": "fake", "model_version": "fake-1"}
    assert agent.versions() == {"model": "smol"}


def test_tabular_mode_prefers_the_provider_confidence(tmp_path: Path) -> None:
    fake = FakeProvider(predictions=[Prediction(label=1, probabilities={"1": 0.6}, confidence=0.9)])
    result = run(build(tmp_path, fake, features=["a"]), {"a": 1})
    assert result.confidence == 0.9
    assert result.data["output"] == 1


def test_tabular_mode_missing_feature_names_it(tmp_path: Path) -> None:
    fake = FakeProvider(predictions=[Prediction(label="ok")])
    agent = build(tmp_path, fake, features=["amount", "country"])
    with pytest.raises(AgentError, match=r"feature 'country' is missing from the handoff"):
        run(agent, {"amount": 1})
    assert fake.rows == []


# ---- contextual calibration ----------------------------------------------------------------

INTENTS = ["billing", "technical", "shipping"]
#: label log-probabilities by prompt: the model leans to "billing" whatever the ticket says
SCORES = {
    "Ticket: N/A": {"billing": -0.5, "technical": -2.5, "shipping": -3.0},
    "Ticket: my app crashes": {"billing": -0.9, "technical": -1.2, "shipping": -3.1},
    "Ticket: my parcel is late": {"billing": -0.8, "technical": -3.0, "shipping": -1.5},
    "Ticket: refund me": {"billing": -0.2, "technical": -3.0, "shipping": -3.5},
}
TICKETS = {"my app crashes": "technical", "my parcel is late": "shipping", "refund me": "billing"}


def calibrated_agent(tmp_path: Path, provider: Provider, **settings: Any) -> InferenceAgent:
    defaults: dict[str, Any] = {"prompt": "Ticket: {{ text }}", "output": "label"}
    defaults.update(labels=INTENTS, output_field="intent", calibrate=True)
    return build(tmp_path, provider, **{**defaults, **settings})


def test_uncalibrated_labels_follow_the_bias(tmp_path: Path) -> None:
    scorer = LabelScorer(SCORES)
    agent = calibrated_agent(tmp_path, scorer, calibrate=False)
    answers = [run(agent, {"text": text}).data["intent"] for text in TICKETS]
    assert answers == ["billing", "billing", "billing"]
    assert "Ticket: N/A" not in scorer.prompts()


def test_calibration_subtracts_the_content_free_baseline(tmp_path: Path) -> None:
    scorer = LabelScorer(SCORES)
    agent = calibrated_agent(tmp_path, scorer)
    for text, gold in TICKETS.items():
        result = run(agent, {"text": text, "channel": "chat"})
        assert result.data == {"text": text, "channel": "chat", "intent": gold}
        calibrated = [
            SCORES[f"Ticket: {text}"][label] - SCORES["Ticket: N/A"][label] for label in INTENTS
        ]
        share = math.exp(max(calibrated)) / sum(math.exp(score) for score in calibrated)
        assert result.confidence == pytest.approx(share)
        assert result.confidence is not None and 0 < result.confidence <= 1
        assert result.versions["calibration"] == prompt_hash("Ticket: N/A")
        assert result.versions["prompt"] == prompt_hash(f"Ticket: {text}")
    assert scorer.requests[0].labels == INTENTS
    assert scorer.prompts() == ["Ticket: N/A", *(f"Ticket: {text}" for text in TICKETS)]


def test_the_baseline_is_asked_once_even_for_concurrent_items(tmp_path: Path) -> None:
    scorer = LabelScorer(SCORES)
    agent = calibrated_agent(tmp_path, scorer)

    async def together() -> list[Result]:
        handoffs = [Handoff(data={"text": text}, run_id="r1") for text in TICKETS]
        return list(await asyncio.gather(*(agent.run(h, STEP) for h in handoffs)))

    results = asyncio.run(together())
    later = run(agent, {"text": "my app crashes"})  # and again from another event loop

    assert [r.data["intent"] for r in results] == list(TICKETS.values())
    assert later.data["intent"] == "technical"
    assert scorer.prompts().count("Ticket: N/A") == 1
    assert len(scorer.requests) == 1 + len(TICKETS) + 1
    # the baseline's call is accounted to the item that asked for it
    assert sorted(r.usage.model_calls for r in [*results, later]) == [1, 1, 1, 2]


def test_the_baseline_is_asked_again_when_the_model_changes(tmp_path: Path) -> None:
    scorer = LabelScorer(SCORES)
    agent = calibrated_agent(tmp_path, scorer)
    run(agent, {"text": "refund me"})
    scorer.version = "scorer-2"  # the registry promoted a retrained model under the alias
    run(agent, {"text": "refund me"})
    assert scorer.prompts() == ["Ticket: N/A", "Ticket: refund me"] * 2


def test_the_content_free_record_keeps_the_first_records_shape(tmp_path: Path) -> None:
    prompt = "{{ text }}|{{ n }}|{{ tags | length }}|{{ meta.source }}"
    content_free_prompt = "N/A|0|0|N/A"
    scores = {"billing": -1.0, "technical": -2.0, "shipping": -3.0}
    item = {"text": "hi", "n": 3.5, "tags": ["a"], "meta": {"source": "web"}}
    scorer = LabelScorer({content_free_prompt: scores, "hi|3.5|1|web": scores})
    agent = calibrated_agent(tmp_path, scorer, prompt=prompt, system="Classify.")
    result = run(agent, item)
    assert scorer.prompts() == [content_free_prompt, "hi|3.5|1|web"]
    assert result.versions["calibration"] == prompt_hash(f"Classify.\x00{content_free_prompt}")
    # equal scores before and after: every calibrated score is 0, the first label wins
    assert result.data["intent"] == "billing"
    assert result.confidence == pytest.approx(1 / 3)


def test_content_free_values() -> None:
    record = {"s": "x", "i": 7, "f": 0.5, "b": True, "l": [1], "t": ("a",), "d": {"k": "v"}}
    assert content_free(record) == {
        "s": "N/A",
        "i": 0,
        "f": 0,
        "b": False,
        "l": [],
        "t": [],
        "d": {"k": "N/A"},
    }
    assert content_free(None) is None


def test_calibration_without_label_scores_fails_at_the_first_call(tmp_path: Path) -> None:
    fake = FakeProvider([completion("billing", label="billing")] * 2)
    agent = calibrated_agent(tmp_path, fake)
    with pytest.raises(AgentError, match="calibrate: true needs a provider that reports label"):
        run(agent, {"text": "refund me"})
    assert [r.prompt for r in fake.requests] == ["Ticket: N/A"]


def test_calibration_needs_a_score_for_every_label(tmp_path: Path) -> None:
    scores = {"Ticket: N/A": {"billing": -0.5, "technical": -2.5}}
    agent = calibrated_agent(tmp_path, LabelScorer(scores))
    with pytest.raises(AgentError, match=r"no score for the labels \['shipping'\]"):
        run(agent, {"text": "refund me"})


def test_calibrate_is_rejected_outside_label_mode(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="calibrate: true works on output: label only"):
        build(tmp_path, FakeProvider(), prompt="x", calibrate=True)


def test_a_router_is_keyed_by_the_step_and_reads_its_outcomes_from_the_store(
    tmp_path: Path,
) -> None:
    from relayflow.providers.context import request_type
    from relayflow.providers.router import Metrics, Route, RouterProvider
    from relayflow.spec.loader import load_spec

    file = tmp_path / "wf.yaml"
    file.write_text(
        "name: wf\nworkflow:\n  - {name: infer, type: inference, model: r, prompt: hi}\n",
        encoding="utf-8",
    )
    a = FakeProvider([completion("from a")], name="a", version="a-1")
    b = FakeProvider([completion("from b")], name="b", version="b-1")
    router = RouterProvider(
        "r", "most_accurate", [Route("a", a, None), Route("b", b, None)], metrics=Metrics()
    )
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    ctx = BuildContext(
        base_dir=tmp_path,
        workflow_file=file,
        get_provider=lambda alias: router,
        store_url=url,
        workflow=load_spec(file),
    )
    agent = InferenceAgent(
        InferenceConfig(name="infer", type="inference", model="r", prompt="hi", output_field="x"),
        ctx,
    )
    asyncio.run(agent.prepare())
    feed = router._feed_of[("wf", "infer")]
    assert feed.url == url and feed.loads == 1
    assert feed._watched == {"wf": {"infer": "x"}}
    for _ in range(30):  # judged under the step's type only: b right, a wrong every time
        router.record_outcome("b", True, ("wf", "infer"))
        router.record_outcome("a", False, ("wf", "infer"))
    result = run(agent, {})
    assert result.data["x"] == "from b" and result.versions["answered_by"] == "b=fake-model"
    assert request_type.get() is None
    asyncio.run(router.close())
