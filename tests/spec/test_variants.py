"""The `variants:` section: each problem at the variant's own line, the weights, and the
workflow each variant runs as (``name@variant``, its overrides applied, its own version)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from relayflow.agents.inference import InferenceConfig
from relayflow.agents.quality_check import QualityCheckConfig
from relayflow.errors import Problem, RelayflowError
from relayflow.schema.file import VariantSpec
from relayflow.spec.loader import load_spec
from relayflow.spec.variants import (
    split_name,
    variant_workflow,
    weights,
    workflow_for_run,
)

Write = Callable[..., Path]
Problems = Callable[[str], list[Problem]]

#: lines 1-14; the variants start at line 15
BASE = """\
name: triage
workflow:
  - name: Clean
    type: transform
    script: preprocess.py
  - name: Ask
    type: inference
    model: gpt-5x
    prompt_template: templates/query_prompt.jinja
    output: label
    labels: [a, b]
  - name: Check
    type: quality_check
    min_confidence: 0.8
"""


def test_a_valid_section_loads_with_typed_variants(write: Write) -> None:
    workflow = load_spec(
        write(
            BASE
            + "variants:\n"
            + "  - name: control\n"
            + "    weight: 3\n"
            + "  - name: strict\n"
            + "    weight: 1\n"
            + "    agents:\n"
            + "      Check: {min_confidence: 0.95}\n"
        )
    )
    control, strict = workflow.spec.variants
    assert (control.name, control.weight, control.agents) == ("control", 3, {})
    assert strict.agents == {"Check": {"min_confidence": 0.95}}
    assert weights(workflow.spec.variants) == [0.75, 0.25]


def test_each_problem_points_at_the_variant_line(problems: Problems) -> None:
    found = problems(
        BASE
        + "variants:\n"  # 15
        + "  - name: control\n"  # 16
        + "  - name: control\n"  # 17
        + "    agents:\n"  # 18
        + "      Nope: {x: 1}\n"  # 19
        + "      Check:\n"  # 20
        + "        min_confidence: 1.5\n"  # 21
        + "        type: human_review\n"  # 22
        + "      Ask:\n"  # 23
        + "        promt: hi\n"  # 24
        + "  - name: has space\n"  # 25
    )
    got = {(p.line, p.field): p.message for p in found}
    assert got == {
        (17, "variants[1].name"): "duplicate variant name (also variant #1)",
        (19, "variants[1].agents.Nope"): "unknown agent 'Nope'",
        (21, "variants[1].agents.Check.min_confidence"): (
            "input should be less than or equal to 1 (got 1.5)"
        ),
        (22, "variants[1].agents.Check.type"): "a variant cannot change an agent's name or type",
        (24, "variants[1].agents.Ask.promt"): "unknown field",
        (25, "variants[2].name"): "'has space' is not a valid variant name",
    }
    unknown = next(p for p in found if p.line == 19)
    assert unknown.fix == "use one of: Ask, Check, Clean"
    assert str(unknown).startswith(f"{unknown.file}:19: variants[1].agents.Nope: unknown agent")


def test_whole_workflow_checks_run_on_each_variant_at_its_own_lines(problems: Problems) -> None:
    found = problems(
        BASE.replace("name: triage\n", "name: triage\nmodels:\n  gpt-5x: {}\n")  # +2 lines
        + "variants:\n"  # 17
        + "  - name: control\n"  # 18
        + "  - name: other\n"  # 19
        + "    agents:\n"  # 20
        + "      Ask:\n"  # 21
        + "        model: gpt-9\n"  # 22
        + "        prompt_template: templates/missing.jinja\n"  # 23
        + "      Clean: {script: nowhere.py}\n"  # 24
    )
    got = {(p.line, p.field): p.message for p in found}
    assert got[(22, "variants[1].agents.Ask.model")] == "model alias 'gpt-9' is not defined"
    assert got[(23, "variants[1].agents.Ask.prompt_template")].startswith("file not found:")
    assert got[(24, "variants[1].agents.Clean.script")].startswith("file not found:")
    assert len(found) == 3  # the workflow as written is fine: nothing reported twice


def test_the_batch_source_cannot_vary(problems: Problems, workdir: Path) -> None:
    (workdir / "items.jsonl").write_text('{"id": 1}\n')
    text = BASE.replace(
        "workflow:\n", "workflow:\n  - name: Load\n    type: retrieval\n    source: items.jsonl\n"
    )
    [problem] = problems(
        text
        + "variants:\n"  # 18
        + "  - name: a\n"  # 19
        + "  - name: b\n"  # 20
        + "    agents:\n"  # 21
        + "      Load: {limit: 3}\n"  # 22
    )
    assert (problem.line, problem.field) == (22, "variants[1].agents.Load")
    assert "every variant runs on the same inputs" in problem.message


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("  - name: only\n", "one variant compares nothing"),
        (
            "  - name: a\n    weight: 0\n  - name: b\n    weight: 0\n",
            "every weight is 0, so no variant gets traffic",
        ),
    ],
)
def test_the_section_as_a_whole_is_checked(problems: Problems, section: str, message: str) -> None:
    [problem] = problems(BASE + "variants:\n" + section)
    assert (problem.line, problem.field, problem.message) == (15, "variants", message)


def test_a_negative_weight_is_a_type_problem(problems: Problems) -> None:
    [problem] = problems(BASE + "variants:\n  - name: a\n    weight: -1\n  - name: b\n")
    assert (problem.line, problem.field) == (17, "variants[0].weight")


@pytest.mark.parametrize(
    ("given", "shares"),
    [
        ([None, None, None], [1 / 3, 1 / 3, 1 / 3]),
        ([1, 3], [0.25, 0.75]),
        ([0.5, None], [1.0, 0.0]),  # no weight beside weights: bench-only, no live traffic
        ([0, 2], [0.0, 1.0]),
    ],
)
def test_weights_are_normalised(given: list[float | None], shares: list[float]) -> None:
    variants = [VariantSpec(name=f"v{i}", weight=w) for i, w in enumerate(given)]
    assert weights(variants) == pytest.approx(shares)


def test_a_variant_runs_as_a_derived_workflow(write: Write) -> None:
    workflow = load_spec(
        write(
            BASE
            + "variants:\n  - name: control\n  - name: strict\n    agents:\n"
            + "      Check: {min_confidence: 0.95}\n"
            + "      Ask: {labels: [a, b, c], temperature: 0.5}\n"
        )
    )
    control = variant_workflow(workflow, "control")
    strict = variant_workflow(workflow, "strict")
    assert (control.name, strict.name) == ("triage@control", "triage@strict")
    assert control.version == workflow.version  # no overrides: the same content
    assert strict.version != workflow.version and len(strict.version) == 12
    assert control.agents == workflow.agents
    check = strict.agents[2]
    assert isinstance(check, QualityCheckConfig) and check.min_confidence == 0.95
    ask = strict.agents[1]
    assert isinstance(ask, InferenceConfig)
    assert (ask.labels, ask.temperature, ask.output) == (["a", "b", "c"], 0.5, "label")
    assert strict.agents[0] == workflow.agents[0]
    with pytest.raises(RelayflowError, match="no variant 'nope' — use one of: control, strict"):
        variant_workflow(workflow, "nope")

    assert workflow_for_run(workflow, "triage") is workflow
    found = workflow_for_run(workflow, "triage@strict")
    assert found is not None and found.agents == strict.agents
    assert workflow_for_run(workflow, "triage@gone") is None
    assert workflow_for_run(workflow, "other@strict") is None
    assert split_name("a@b@c") == ("a@b", "c") and split_name("plain") == ("plain", None)
