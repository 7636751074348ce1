"""Top-level sections and agent settings are a closed set: a misspelt key is an error at its line
with the nearest known key, never silently dropped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from relayflow.agents.registry import agent_class, known_types
from relayflow.errors import Problem
from relayflow.schema.file import WorkflowSpec
from relayflow.spec.loader import load_spec

Write = Callable[..., Path]
Problems = Callable[[str], list[Problem]]

AGENT = "workflow:\n  - name: a\n    type: transform\n    script: preprocess.py\n"


@pytest.mark.parametrize(
    ("section", "value", "guess"),
    [
        ("budgte", "{limits: [{currency: 5}]}", "budget"),
        ("modles", "{small: {provider: llama_cpp}}", "models"),
        ("evalute", "{metric: accuracy}", "evaluate"),
        ("varients", "[]", "variants"),
        ("Defaults", "{timeout: 3}", "defaults"),
        ("alow", "[data]", "allow"),
        ("extend", "base.yaml", "extends"),
        ("consumer", "[{type: jsonl, path: e.jsonl}]", "consumers"),
        ("optimise", "{trials: 5}", "optimize"),
    ],
)
def test_a_misspelt_section_is_an_error_with_the_section_it_meant(
    problems: Problems, section: str, value: str, guess: str
) -> None:
    [problem] = problems(f"{AGENT}{section}: {value}\n")
    assert (problem.line, problem.field, problem.message) == (5, section, "unknown section")
    assert problem.fix == f"did you mean `{guess}`?"


def test_a_misspelt_budget_no_longer_drops_the_spend_limit(problems: Problems) -> None:
    found = problems(f"budgte:\n  limits:\n    - currency: 0.01\n{AGENT}")
    assert [str(p).split(": ", 1)[1] for p in found] == [
        "budgte: unknown section — did you mean `budget`?"
    ]


def test_a_section_far_from_any_lists_them_all(problems: Problems) -> None:
    [problem] = problems(f"{AGENT}banana: 1\n")
    assert problem.message == "unknown section"
    assert problem.fix.startswith("remove it or use one of: access, allow, budget, ")
    assert "`x-`" in problem.fix


@pytest.mark.parametrize("value", ['"x"', "8"])
def test_concurrency_is_not_a_section_and_says_where_it_goes(
    problems: Problems, value: str
) -> None:
    [problem] = problems(f"{AGENT}concurrency: {value}\n")
    assert (problem.line, problem.field) == (5, "concurrency")
    assert problem.message == "not a section of a workflow file"
    assert "relayflow run --concurrency N" in problem.fix


def test_a_wrong_type_in_a_section_is_a_type_error_at_its_line(problems: Problems) -> None:
    [problem] = problems(f"{AGENT}compute_rate_per_cpu_second: x\n")
    assert (problem.line, problem.field) == (5, "compute_rate_per_cpu_second")
    assert problem.message.startswith("input should be a valid number")


def test_every_section_the_model_declares_is_accepted(write: Write) -> None:
    """The set is explicit: each field of WorkflowSpec loads when written with a valid value."""
    wf = load_spec(
        write(
            "name: n\ndescription: d\ncompute_rate_per_cpu_second: 0.1\ncache: false\n"
            "defaults: {timeout: 5}\nescalation: {}\naccess: {sensitive: [a]}\nallow: []\n"
            "budget: {limits: [{tokens: 10}]}\nmodels: {}\nevaluate: {metric: accuracy}\n"
            "variants: []\nconsumers: []\noptimize: {split: {holdout: 0.3}}\n"
            "x-anchors: &s {script: preprocess.py}\n"
            "workflow:\n  - {name: a, type: transform, <<: *s}\n"
        )
    )
    written = {"name", "description", "compute_rate_per_cpu_second", "cache", "defaults"}
    written |= {"escalation", "access", "allow", "budget", "models", "evaluate", "variants"}
    written |= {"consumers", "optimize"}
    assert written | {"workflow"} == set(WorkflowSpec.model_fields)
    assert wf.spec.name == "n" and wf.spec.budget is not None


def test_a_misspelt_key_inside_a_section_names_the_nearest_field(problems: Problems) -> None:
    found = problems(
        f"{AGENT}models:\n  small:\n    provider: openai\n    model: m\n    pirce: {{}}\n"
        "budget:\n  limits:\n    - curency: 1\n"
    )
    assert [(p.line, p.field, p.fix) for p in found] == [
        (9, "models.small.pirce", "did you mean `price`?"),
        (12, "budget.limits[0].curency", "did you mean `currency`?"),
    ]


def test_a_misspelt_key_inside_a_union_setting_names_the_nearest_field(
    problems: Problems,
) -> None:
    [problem] = [p for p in problems(f"{AGENT}cache: {{enabld: true}}\n") if "enabld" in p.field]
    assert problem.fix == "did you mean `enabled`?"


@pytest.mark.parametrize("type_name", sorted(set(known_types()) - {"transform"}))
def test_every_agent_type_rejects_an_unknown_key_with_a_guess(
    problems: Problems, type_name: str
) -> None:
    config = agent_class(type_name).Config
    field = next(f for f in config.model_fields if f not in ("name", "type"))
    misspelt = field[:-1] + field[-1].upper() + "x"
    found = problems(f"workflow:\n  - name: a\n    type: {type_name}\n    {misspelt}: 1\n")
    [problem] = [p for p in found if p.field == f"a.{misspelt}"]
    assert (problem.line, problem.message) == (4, "unknown field")
    assert problem.fix.startswith("did you mean `")


def test_an_unknown_agent_key_far_from_any_lists_the_agents_fields(problems: Problems) -> None:
    [problem] = problems(f"{AGENT}    zzz: 1\n")
    assert problem.field == "a.zzz"
    assert problem.fix.startswith("remove it or use one of: cache, depends_on, description, ")


def test_a_variant_override_with_a_misspelt_key_names_the_field(problems: Problems) -> None:
    found = problems(
        f"{AGENT}variants:\n  - name: one\n  - name: two\n    agents:\n      a:\n"
        "        fucntion: go\n"
    )
    [problem] = [p for p in found if p.field.endswith("fucntion")]
    assert (problem.line, problem.field) == (10, "variants[1].agents.a.fucntion")
    assert problem.fix == "did you mean `function`?"


def test_a_key_with_a_line_break_is_still_reported_on_one_line(problems: Problems) -> None:
    """Found by the fuzz test: a key holding a newline (or U+2028) split the problem over two
    lines of `relayflow validate`'s output."""
    [problem] = problems(f'{AGENT}"bud\\nget\\u2028": 1\n')
    assert problem.field == "bud\nget\u2028"
    assert str(problem).splitlines() == [str(problem)]
    assert "bud\\nget\\u2028: unknown section" in str(problem)
