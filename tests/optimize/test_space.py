"""The search space: knobs derived from what a workflow declares, the section's own knobs, and
the workflow one setting runs as."""

from __future__ import annotations

from pathlib import Path

from relayflow.optimize.space import configured, search_space
from relayflow.spec.loader import load_spec
from tests.optimize.quiz import quiz


def test_knobs_are_derived_from_the_workflow(tmp_path: Path) -> None:
    space = search_space(load_spec(quiz(tmp_path)))
    knobs = {k.name: k for k in space.knobs}
    # a label step has no max_tokens knob; its model can be either text alias
    assert set(knobs) == {"Answer.model", "Check.min_confidence"}
    assert knobs["Answer.model"].choices == ("cheap", "smart")
    assert knobs["Answer.model"].baseline == "cheap"
    assert knobs["Check.min_confidence"].baseline == 0.9
    assert knobs["Check.min_confidence"].holds(0.9)


def test_the_section_names_knobs_and_turns_derived_ones_off(tmp_path: Path) -> None:
    section = """optimize:
  search:
    agents:
      Answer: {model: false}
      Check: {min_confidence: [0.5, 0.9]}
"""
    space = search_space(load_spec(quiz(tmp_path, section)))
    assert [(k.name, k.choices) for k in space.knobs] == [("Check.min_confidence", (0.5, 0.9))]


def test_derive_false_searches_only_what_is_named(tmp_path: Path) -> None:
    section = "optimize: {search: {derive: false, agents: {Answer: {model: true}}}}"
    space = search_space(load_spec(quiz(tmp_path, section)))
    assert [k.name for k in space.knobs] == ["Answer.model"]


def test_a_setting_runs_as_a_workflow_with_those_settings(tmp_path: Path) -> None:
    workflow = load_spec(quiz(tmp_path))
    space = search_space(workflow)
    derived = configured(workflow, {"Answer.model": "smart", "Check.min_confidence": 0.4}, space)
    agents = {a.name: a for a in derived.agents}
    assert agents["Answer"].model_dump()["model"] == "smart"
    assert agents["Check"].model_dump()["min_confidence"] == 0.4
    assert derived.version != workflow.version
    # the workflow as written is untouched
    assert workflow.agents[1].model_dump()["model"] == "cheap"


def test_a_review_gate_on_confidence_is_an_escalation_knob(tmp_path: Path) -> None:
    path = quiz(tmp_path)
    path.write_text(
        path.read_text().replace(
            "type: human_review", 'type: human_review\n    when: "confidence < 0.7"'
        )
    )
    workflow = load_spec(path)
    space = search_space(workflow)
    knob = next(k for k in space.knobs if k.name == "Review.min_confidence")
    assert knob.baseline == 0.7
    derived = configured(workflow, {"Review.min_confidence": 0.55}, space)
    assert derived.agents[-1].model_dump()["when"] == "confidence < 0.55"


def test_a_model_knob_offers_only_aliases_that_fit_the_step(tmp_path: Path) -> None:
    path = quiz(tmp_path)
    text = path.read_text().replace(
        "models:\n",
        "models:\n  forest: {provider: sklearn, model: m.joblib}\n"
        "  route: {provider: router, strategy: cascade, threshold: 0.8,\n"
        "          candidates: [cheap, smart]}\n",
    )
    path.write_text(text)
    workflow = load_spec(path)
    knobs = {k.name: k for k in search_space(workflow).knobs}
    # a tabular model cannot answer a prompt; a router over text models can
    assert knobs["Answer.model"].choices == ("cheap", "route", "smart")
    assert knobs["models.route.threshold"].baseline == 0.8
    assert knobs["models.route.order"].choices == ("cheap>smart", "smart>cheap")
    derived = configured(workflow, {"models.route.order": "smart>cheap"}, search_space(workflow))
    assert derived.spec.models["route"].model_dump()["candidates"] == ["smart", "cheap"]
    assert workflow.spec.models["route"].model_dump()["candidates"] == ["cheap", "smart"]
