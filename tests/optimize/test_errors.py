"""Bad optimize: sections and workflows that cannot be optimized: one line each, naming the
file, line and field, what is wrong and how to fix it (as `relayflow validate` prints them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from relayflow.errors import SpecError
from relayflow.optimize.search import check_ready
from relayflow.spec.loader import load_spec
from tests.optimize.quiz import quiz


def problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return [str(p) for p in caught.value.problems]


def test_an_unknown_knob_names_the_nearest_one(tmp_path: Path) -> None:
    path = quiz(tmp_path, "optimize:\n  search:\n    agents:\n      Answer:\n        modle: true")
    [line] = problems(path)
    assert line.startswith(f"{path}:15: optimize.search.agents.Answer.modle: unknown field")
    assert "did you mean `model`?" in line


def test_a_knob_that_the_step_does_not_have(tmp_path: Path) -> None:
    path = quiz(tmp_path, "optimize:\n  search:\n    agents:\n      Answer: {min_confidence: true}")
    [line] = problems(path)
    assert f"{path}:14: optimize.search.agents.Answer.min_confidence:" in line
    assert "no min_confidence knob" in line and "its knobs: model" in line


def test_an_empty_range(tmp_path: Path) -> None:
    section = (
        "optimize:\n  search:\n    agents:\n      Check:\n"
        "        min_confidence: {low: 0.9, high: 0.5}"
    )
    [line] = problems(quiz(tmp_path, section))
    assert (
        ":15: optimize.search.agents.Check.min_confidence: empty range: low 0.9 is above high 0.5"
        in line
    )
    assert "— swap them" in line


def test_an_empty_list_of_choices_and_an_unknown_alias(tmp_path: Path) -> None:
    section = (
        "optimize:\n  search:\n    agents:\n      Answer: {model: [cheap, genius]}\n"
        "      Check: {min_confidence: []}"
    )
    found = problems(quiz(tmp_path, section))
    assert any("Answer.model[1]: unknown model alias 'genius'" in p for p in found)
    assert any("Check.min_confidence: no choices: the list is empty" in p for p in found)


def test_an_unknown_objective_and_a_bad_constraint(tmp_path: Path) -> None:
    found = problems(quiz(tmp_path, "optimize: {objectives: [accuracy, cwp]}"))
    assert any(
        "optimize.objectives[1]: unknown objective 'cwp' — did you mean `cpw`?" in p for p in found
    )
    found = problems(quiz(tmp_path, 'optimize: {constraints: {cpw: "< 3"}}'))
    assert any("optimize.constraints" in p and "`>= number` or `<= number`" in p for p in found)


def test_a_workflow_without_evaluate(tmp_path: Path) -> None:
    path = quiz(tmp_path)
    text = path.read_text()
    start, end = text.index("evaluate:"), text.index("workflow:")
    path.write_text(text[:start] + text[end:])
    with pytest.raises(SpecError) as caught:
        check_ready(load_spec(path))
    [problem] = caught.value.problems
    assert str(problem).startswith(f"{path}:1: evaluate: the workflow has no evaluate: section")


def test_a_golden_set_without_a_dev_split(tmp_path: Path) -> None:
    path = quiz(tmp_path, splits=False)
    with pytest.raises(SpecError) as caught:
        check_ready(load_spec(path))
    [problem] = caught.value.problems
    assert f"{path}:6: evaluate.golden: no dev split: no golden record has `split: dev`" in str(
        problem
    )
    assert "optimize: {split: {holdout: 0.3}}" in str(problem)
    # with the section, `relayflow validate` reports it too
    with_section = quiz(tmp_path, "optimize: {trials: 3}", splits=False)
    assert any("no dev split" in p for p in problems(with_section))


def test_a_share_held_out_by_key_is_a_split(tmp_path: Path) -> None:
    check_ready(load_spec(quiz(tmp_path, "optimize: {split: {holdout: 0.3}}", splits=False)))
