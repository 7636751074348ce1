"""Tests of the whole-workflow checks: names, graph, files, models, templates, rulesets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from relayflow.agents.quality_check import QualityCheckConfig
from relayflow.agents.transform import TransformConfig
from relayflow.errors import Problem, SpecError
from relayflow.schema.file import WorkflowSpec
from relayflow.schema.yaml_lines import parse_yaml
from relayflow.spec.loader import load_spec
from relayflow.spec.validate import validate_workflow

Write = Callable[..., Path]  # the `write` fixture
Problems = Callable[[str], list[Problem]]  # the `problems` fixture


def _transforms(*lines: str) -> str:
    """A workflow of transform agents; each argument is one agent's extra lines (or none)."""
    text = "workflow:\n"
    for index, extra in enumerate(lines):
        text += f"  - name: {'abcdefgh'[index]}\n    type: transform\n    script: preprocess.py\n"
        text += "".join(f"    {line}\n" for line in extra.splitlines())
    return text


# names and graph


def test_a_duplicate_name_is_reported_at_the_second_agent(problems: Problems) -> None:
    [problem] = problems(
        "workflow:\n"
        "  - name: a\n    type: transform\n    script: preprocess.py\n"
        "  - name: a\n    type: transform\n    script: preprocess.py\n"
    )
    assert (problem.line, problem.field) == (5, "a.name")
    assert problem.message == "duplicate name (also agent #1)"


def test_an_unknown_dependency_lists_the_names(problems: Problems) -> None:
    [problem] = problems(_transforms("", "", "depends_on: [a, zed]"))
    assert (problem.line, problem.field) == (11, "c.depends_on")
    assert problem.message == "unknown agent 'zed'"
    assert problem.fix == "use one of: a, b"


def test_a_self_dependency_is_rejected(problems: Problems) -> None:
    [problem] = problems(_transforms("", "depends_on: b"))
    assert (problem.line, problem.field) == (8, "b.depends_on")
    assert problem.message == "an agent cannot depend on itself"


def test_a_two_agent_cycle_is_reported_at_the_first_agent(problems: Problems) -> None:
    [problem] = problems(_transforms("depends_on: [b]", "depends_on: [a]"))
    assert (problem.line, problem.field) == (5, "a.depends_on")
    assert problem.message == "cycle: a -> b -> a (each depends on the next)"


def test_a_longer_cycle_reads_in_the_direction_of_depends_on(problems: Problems) -> None:
    [problem] = problems(_transforms("depends_on: [c]", "depends_on: [a]", "depends_on: [b]"))
    assert (problem.line, problem.field) == (5, "a.depends_on")
    assert problem.message.startswith("cycle: a -> c -> b -> a")


def test_a_cycle_is_found_beside_other_graph_problems(problems: Problems) -> None:
    found = problems(_transforms("depends_on: [b]", "depends_on: [a, nobody]"))
    assert [(p.line, p.message.split(":")[0]) for p in found] == [
        (5, "cycle"),
        (9, "unknown agent 'nobody'"),
    ]


def test_depends_on_accepts_one_name_or_none(write: Write) -> None:
    wf = load_spec(write(_transforms("", "", "depends_on: a", "depends_on: []")))
    assert wf.depends_on == {"a": (), "b": ("a",), "c": ("a",), "d": ()}


# files


@pytest.mark.parametrize(
    ("agent", "line", "field"),
    [
        ("type: transform\n    script: missing.py", 4, "x.script"),
        (
            "type: inference\n    model: m\n    prompt_template: t/none.jinja",
            5,
            "x.prompt_template",
        ),
        ("type: quality_check\n    ruleset: validators/none.json", 4, "x.ruleset"),
        ("type: retrieval\n    source: data/tickets.jsonl", 4, "x.source"),
        ("type: retrieval\n    source: file://data/tickets.jsonl", 4, "x.source"),
        ("type: transform\n    script: ~no_such_user_here/x.py", 4, "x.script"),
        ("type: transform\n    script: " + "long" * 100 + ".py", 4, "x.script"),
    ],
)
def test_a_missing_local_file_is_reported(
    problems: Problems, workdir: Path, agent: str, line: int, field: str
) -> None:
    [problem] = problems(f"workflow:\n  - name: x\n    {agent}\n")
    assert (problem.line, problem.field) == (line, field)
    assert problem.message.startswith("file not found: ")
    assert "relative to the YAML" in problem.fix


def test_the_message_names_the_path_beside_the_yaml(problems: Problems, workdir: Path) -> None:
    [problem] = problems("workflow:\n  - name: x\n    type: transform\n    script: gone.py\n")
    assert problem.message == f"file not found: {workdir / 'gone.py'}"


@pytest.mark.parametrize(
    "source",
    ["s3://customer-data/", "templates", "kb/{{ data.id }}.json", "https://example.org/x.json"],
)
def test_remote_folder_and_templated_sources_are_not_checked_as_files(
    write: Write, source: str
) -> None:
    wf = load_spec(write(f"workflow:\n  - name: x\n    type: retrieval\n    source: '{source}'\n"))
    assert wf.agents[0].name == "x"


def test_a_folder_is_not_a_script(problems: Problems) -> None:
    [problem] = problems("workflow:\n  - name: x\n    type: transform\n    script: templates\n")
    assert (problem.line, problem.message.split(":")[0]) == (4, "not a file")


# models


def test_an_undeclared_alias_is_rejected_once_models_exist(problems: Problems) -> None:
    [problem] = problems(
        """\
models:
  small: {provider: llama_cpp}
  big: {provider: openai, model: gpt-4o}
workflow:
  - name: ask
    type: inference
    model: gpt-5x
    prompt: "{{ data.text }}"
"""
    )
    assert (problem.line, problem.field) == (7, "ask.model")
    assert problem.message == "model alias 'gpt-5x' is not defined"
    assert problem.fix.endswith("use one of: big, small")


def test_an_undeclared_default_model_is_rejected(problems: Problems) -> None:
    found = problems(
        """\
models:
  small: {}
defaults:
  model: large
workflow:
  - name: a
    type: transform
    script: preprocess.py
"""
    )
    assert [(p.line, p.field) for p in found] == [(4, "defaults.model")]


# inference outputs and templates


def test_label_output_needs_labels(problems: Problems) -> None:
    [problem] = problems(
        """\
workflow:
  - name: classify
    type: inference
    model: small
    prompt: "Intent of {{ data.text }}?"
    output: label
"""
    )
    assert (problem.line, problem.field) == (6, "classify.labels")
    assert problem.message == "output: label needs a list of labels"


def test_an_inference_agent_needs_a_prompt(problems: Problems) -> None:
    [problem] = problems("workflow:\n  - name: ask\n    type: inference\n    model: small\n")
    assert (problem.line, problem.field, problem.message) == (2, "ask.prompt_template", "no prompt")


def test_a_broken_template_points_at_the_template_file(problems: Problems, write: Write) -> None:
    template = write("Hello {{ data.name }}\n\n{% if data.vip %}VIP\n", "templates/bad.jinja")
    [problem] = problems(
        "workflow:\n  - name: ask\n    type: inference\n    model: m\n"
        "    prompt_template: templates/bad.jinja\n"
    )
    assert (problem.file, problem.line, problem.field) == (str(template), 3, "ask.prompt_template")
    assert problem.message.startswith("template error: ")
    assert "endif" in problem.message


def test_a_broken_inline_prompt_points_at_the_yaml(problems: Problems) -> None:
    [problem] = problems(
        "workflow:\n  - name: ask\n    type: inference\n    model: m\n    prompt: '{{ data.x '\n"
    )
    assert (problem.line, problem.field) == (5, "ask.prompt")
    assert problem.file.endswith("workflow.yaml")


def test_a_template_that_is_not_utf8_is_reported(problems: Problems, workdir: Path) -> None:
    (workdir / "templates" / "latin1.jinja").write_bytes("caf\xe9 {{ data }}".encode("latin-1"))
    [problem] = problems(
        "workflow:\n  - name: ask\n    type: inference\n    model: m\n"
        "    prompt_template: templates/latin1.jinja\n"
    )
    assert problem.file == str(workdir / "templates" / "latin1.jinja")
    assert "UTF-8" in problem.message


def test_a_broken_review_condition_is_reported(problems: Problems) -> None:
    [problem] = problems(
        _transforms("") + "  - name: review\n    type: human_review\n    when: 'confidence <'\n"
    )
    assert (problem.line, problem.field) == (7, "review.when")
    assert problem.message.startswith("expression error: ")


# rulesets


def test_the_seed_ruleset_is_a_valid_schema(write: Write) -> None:
    wf = load_spec(
        write(
            "workflow:\n  - name: q\n    type: quality_check\n"
            "    ruleset: validators/schema_v2.json\n"
        )
    )
    assert isinstance(wf.agents[0], QualityCheckConfig)


def test_invalid_json_is_reported_at_its_line_in_the_json(
    problems: Problems, write: Write, workdir: Path
) -> None:
    write('{\n  "type": "object",\n  "required": ["answer",]\n}\n', "rules.json")
    [problem] = problems(
        "workflow:\n  - name: check\n    type: quality_check\n    ruleset: rules.json\n"
    )
    assert (problem.file, problem.line) == (str(workdir / "rules.json"), 3)
    assert (problem.field, problem.fix) == ("check.ruleset", "fix the JSON syntax")
    assert problem.message.startswith("invalid JSON: ")


def test_a_schema_error_is_reported_at_its_line_in_the_json(
    problems: Problems, write: Write
) -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integr"}}}
    write(json.dumps(schema, indent=2), "rules.json")
    [problem] = problems(
        "workflow:\n  - name: check\n    type: quality_check\n    ruleset: rules.json\n"
    )
    assert problem.file.endswith("rules.json")
    assert problem.line == 5  # "type": "integr"
    assert problem.message.startswith("not a valid JSON Schema: ")
    assert "integr" in problem.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "a JSON Schema is an object, not list"),
        ("5", "a JSON Schema is an object, not int"),
        ('{"$schema": "https://example.org/my-draft"}', "unknown $schema"),
        ('{"$schema": ["x"]}', "unknown $schema"),
    ],
)
def test_a_ruleset_that_is_no_schema_is_reported(
    problems: Problems, write: Write, text: str, message: str
) -> None:
    write(text, "rules.json")
    [problem] = problems(
        "workflow:\n  - name: check\n    type: quality_check\n    ruleset: rules.json\n"
    )
    assert problem.message.startswith(message)
    assert problem.line == 1


def test_an_inline_output_schema_is_checked_at_its_line(problems: Problems) -> None:
    [problem] = problems(
        """\
workflow:
  - name: ask
    type: inference
    model: m
    prompt: "{{ data.text }}"
    output: json
    output_schema:
      type: object
      properties:
        answer: {type: strng}
"""
    )
    assert (problem.line, problem.field) == (10, "ask.output_schema")
    assert problem.message.startswith("not a valid JSON Schema: ")


def test_an_output_schema_file_is_checked_in_its_file(problems: Problems, write: Write) -> None:
    schema = write('{\n  "type": "object",\n  "required": "answer"\n}\n', "answer.json")
    [problem] = problems(
        "workflow:\n  - name: ask\n    type: inference\n    model: m\n    prompt: hi\n"
        "    output: json\n    output_schema: answer.json\n"
    )
    assert (problem.file, problem.line, problem.field) == (str(schema), 3, "ask.output_schema")


@pytest.mark.parametrize("text", ["true", "false"])
def test_a_boolean_ruleset_is_refused_as_the_step_refuses_it(
    problems: Problems, write: Write, text: str
) -> None:
    """jsonschema takes true/false as schemas, but the quality check reads an object
    (read_schema): validate said ok to a file that run then refused."""
    write(text, "rules.json")
    [problem] = problems(
        "workflow:\n  - name: check\n    type: quality_check\n    ruleset: rules.json\n"
    )
    assert problem.message == "a JSON Schema is an object, not bool"


# validate_workflow called directly


def test_validate_workflow_maps_agents_to_their_positions(tmp_path: Path) -> None:
    """When agent 1 failed to load, agent 2 is still reported at its own line, and depending on
    the failed agent by name is not an unknown dependency."""
    text = (
        "workflow:\n"
        "  - name: a\n    type: transform\n    script: a.py\n"
        "  - name: broken\n    type: transform\n"
        "  - name: c\n    type: transform\n    script: c.py\n    depends_on: [broken, d]\n"
    )
    _, lines = parse_yaml(text)
    (tmp_path / "a.py").write_text("def transform(record):\n    return record\n")
    agents = [
        TransformConfig(name="a", type="transform", script="a.py"),
        TransformConfig(name="c", type="transform", script="c.py", depends_on=["broken", "d"]),
    ]
    spec = WorkflowSpec.model_validate({"workflow": [{}]})
    found = validate_workflow(
        spec,
        agents,
        {"a": (), "c": ("broken", "d")},
        tmp_path / "w.yaml",
        lines,
        positions=[0, 2],
        other_names=["broken"],
    )
    assert sorted((p.line, p.field, p.message.split(":")[0]) for p in found) == [
        (9, "c.script", "file not found"),
        (10, "c.depends_on", "unknown agent 'd'"),
    ]


def test_validate_workflow_is_quiet_for_a_good_workflow(seed_dir: Path) -> None:
    wf = load_spec(seed_dir / "workflow.yaml")
    assert validate_workflow(wf.spec, wf.agents, wf.depends_on, wf.file, wf.lines) == []


def test_a_missing_golden_set_is_reported_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "step.py").write_text("def transform(r):\n    return r\n")
    path = tmp_path / "workflow.yaml"
    path.write_text(
        "evaluate:\n"
        "  metric: accuracy\n"
        "  golden: data/golden.jsonl\n"
        "workflow:\n"
        "  - {name: a, type: transform, script: step.py}\n"
    )
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (3, "evaluate.golden")
    assert "file not found" in problem.message


def test_confidence_of_must_name_a_step_listed_before(problems: Problems) -> None:
    text = _transforms("", "") + (
        "  - name: gate\n    type: quality_check\n    confidence_of: later\n"
        "  - name: later\n    type: transform\n    script: preprocess.py\n"
    )
    [problem] = problems(text)
    assert (problem.line, problem.field) == (10, "gate.confidence_of")
    assert problem.message == "'later' is not a step listed before gate"
    assert problem.fix == "name the step whose confidence to judge, one of: a, b"
