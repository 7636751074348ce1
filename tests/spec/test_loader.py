"""Tests of loading a workflow file: the seed as written, YAML and field errors at their lines."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from relayflow.agents.inference import InferenceConfig
from relayflow.agents.registry import known_types
from relayflow.agents.transform import TransformConfig
from relayflow.core.retry import RetryPolicy
from relayflow.errors import Problem, RelayflowError, SpecError
from relayflow.spec.loader import load_spec, load_spec_text

RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "spec"
Write = Callable[..., Path]  # the `write` fixture
Problems = Callable[[str], list[Problem]]  # the `problems` fixture

SEED_NAMES = [
    "DataIngestAgent",
    "PreprocessAgent",
    "LLMInferenceAgent",
    "ValidationAgent",
    "FeedbackLoopAgent",
]


def test_the_seed_loads_as_written(seed_dir: Path) -> None:
    wf = load_spec(seed_dir / "workflow.yaml")

    assert [a.name for a in wf.agents] == SEED_NAMES
    assert [a.type for a in wf.agents] == [
        "retrieval",
        "transform",
        "inference",
        "quality_check",
        "retrain",
    ]
    # depends_on defaults to the agent above
    assert wf.depends_on == {
        "DataIngestAgent": (),
        "PreprocessAgent": ("DataIngestAgent",),
        "LLMInferenceAgent": ("PreprocessAgent",),
        "ValidationAgent": ("LLMInferenceAgent",),
        "FeedbackLoopAgent": ("ValidationAgent",),
    }
    # an alias is accepted as written because the file has no `models:` section
    inference = wf.agents[2]
    assert isinstance(inference, InferenceConfig)
    assert inference.model == "gpt-5x"
    assert wf.spec.models == {}
    # the file is workflow.yaml, so the workflow is named after its folder
    assert wf.name == "customer_support"
    assert wf.file == seed_dir / "workflow.yaml"
    assert wf.base_dir == seed_dir
    assert re.fullmatch(r"[0-9a-f]{12}", wf.version)
    assert wf.lines.line_of(("workflow", 2, "model")) == 10


def test_a_name_comes_from_the_file_or_the_name_field(write: Write) -> None:
    body = "workflow:\n  - name: a\n    type: transform\n    script: preprocess.py\n"
    assert load_spec(write(body, "triage.yaml")).name == "triage"
    assert load_spec(write("name: support\n" + body)).name == "support"


def test_the_version_is_a_hash_of_the_text(write: Write) -> None:
    body = "workflow:\n  - name: a\n    type: transform\n    script: preprocess.py\n"
    first = load_spec(write(body)).version
    assert load_spec(write(body)).version == first
    assert load_spec(write(body + "# a comment changes the version\n")).version != first


def test_problem_prints_as_file_line_field_message_fix() -> None:
    problem = Problem("w.yaml", 3, "a.type", "unknown agent type 'x'", "use one of: transform")
    assert str(problem) == "w.yaml:3: a.type: unknown agent type 'x' — use one of: transform"
    assert str(Problem("w.yaml", 0, "", "file not found")) == "w.yaml: file not found"


def test_a_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert [(p.line, p.message) for p in info.value.problems] == [(0, "file not found")]
    assert isinstance(info.value, RelayflowError)


def test_a_folder_or_binary_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="is a folder"):
        load_spec(tmp_path)
    binary = tmp_path / "w.yaml"
    binary.write_bytes(b"workflow: \xff\xfe\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(binary)


@pytest.mark.parametrize(
    ("text", "line", "fix"),
    [
        ("workflow:\n  - name: a\n    type: transform: x\n", 3, "fix the YAML syntax"),
        ("workflow:\n  - name: a\n    type: [transform\n  - name: b\n", 4, "fix the YAML syntax"),
        ("workflow:\n  - name: a\n\ttype: transform\n", 3, "indent with spaces"),
    ],
)
def test_invalid_yaml_is_reported_at_its_line(
    problems: Problems, text: str, line: int, fix: str
) -> None:
    [problem] = problems(text)
    assert problem.line == line
    assert problem.message.startswith("invalid YAML: ")
    assert problem.fix.startswith(fix)


def test_a_duplicate_key_is_reported_at_the_second_one(problems: Problems) -> None:
    [problem] = problems(
        """\
workflow:
  - name: a
    type: transform
    script: preprocess.py
    script: preprocess.py
"""
    )
    assert (problem.line, problem.field, problem.message) == (
        5,
        "workflow[0].script",
        "duplicate key",
    )


def test_merge_keys_with_local_overrides_are_not_duplicates(write: Write) -> None:
    wf = load_spec(
        write(
            """\
x-common: &common
  type: transform
  script: preprocess.py
  retry: {attempts: 2}
workflow:
  - <<: *common
    name: a
    retry: {attempts: 5}
  - <<: *common
    name: b
"""
        )
    )
    assert [a.retry.attempts for a in wf.agents] == [5, 2]


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("- name: a\n  type: transform\n", 1, "", "the file is a list, not a mapping"),
        ("# comment\n\n- a\n", 3, "", "the file is a list, not a mapping"),
        ("just text\n", 1, "", "the file is a str, not a mapping"),
        ("", 1, "", "the file is empty"),
        ("name: x\nmodels: {}\n", 1, "workflow", "missing"),
    ],
)
def test_the_top_level_must_be_a_mapping_with_workflow(
    problems: Problems, text: str, line: int, field: str, message: str
) -> None:
    [problem] = problems(text)
    assert (problem.line, problem.field, problem.message) == (line, field, message)
    assert "workflow:" in problem.fix


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("workflow: []\n", "the workflow has no agents"),
        ("workflow: agents\n", "input should be a valid list (got 'agents')"),
    ],
)
def test_workflow_must_be_a_non_empty_list(problems: Problems, text: str, message: str) -> None:
    [problem] = problems(text)
    assert (problem.line, problem.field, problem.message) == (1, "workflow", message)


def test_an_agent_must_be_a_mapping(problems: Problems) -> None:
    [problem] = problems("workflow:\n  - a\n")
    assert (problem.line, problem.field) == (2, "workflow[0]")
    assert problem.message == "an agent must be a mapping"


def test_an_unknown_type_lists_the_known_types(problems: Problems) -> None:
    [problem] = problems(
        """\
workflow:
  - name: clean
    script: preprocess.py
    type: transfrom
"""
    )
    assert (problem.line, problem.field) == (4, "clean.type")
    assert problem.message == "unknown agent type 'transfrom'"
    assert problem.fix == "did you mean `transform`?"
    [far] = problems("workflow:\n  - name: clean\n    type: banana\n")
    assert far.fix == f"use one of: {', '.join(known_types())}"
    assert "transform" in far.fix and "retrieval" in far.fix


def test_a_missing_type_points_at_the_agent(problems: Problems) -> None:
    [problem] = problems("workflow:\n  - name: clean\n    script: preprocess.py\n")
    assert (problem.line, problem.field, problem.message) == (2, "clean.type", "missing")


def test_a_missing_name_points_at_the_agent(problems: Problems) -> None:
    [problem] = problems(
        """\
workflow:
  - name: first
    type: transform
    script: preprocess.py
  - type: transform
    script: preprocess.py
"""
    )
    assert (problem.line, problem.field) == (5, "workflow[1].name")
    assert (problem.message, problem.fix) == ("required field is missing", "add `name: …`")


@pytest.mark.parametrize(
    ("setting", "field", "message"),
    [
        (
            'retry: {attempts: "three"}',
            "a.retry.attempts",
            "input should be a valid integer, unable to parse string as an integer (got 'three')",
        ),
        ("timeout: -1", "a.timeout", "input should be greater than 0 (got -1)"),
        ("retry: {attempts: 0}", "a.retry.attempts", "input should be greater than or equal to 1"),
        ("depends_on: 5", "a.depends_on", "input should be a valid list (got 5)"),
        ("run_in: process", "a.run_in", "'process' is not allowed"),
    ],
)
def test_a_wrong_value_is_reported_at_its_line(
    problems: Problems, setting: str, field: str, message: str
) -> None:
    [problem] = problems(
        f"workflow:\n  - name: a\n    type: transform\n    script: preprocess.py\n    {setting}\n"
    )
    assert (problem.line, problem.field) == (5, field)
    assert problem.message.startswith(message)


def test_min_confidence_above_one_is_rejected(problems: Problems) -> None:
    [problem] = problems("workflow:\n  - name: q\n    type: quality_check\n    min_confidence: 2\n")
    assert (problem.line, problem.field) == (4, "q.min_confidence")
    assert problem.message == "input should be less than or equal to 1 (got 2)"


def test_an_unknown_field_is_forbidden(problems: Problems) -> None:
    found = problems("workflow:\n  - name: a\n    type: transform\n    scirpt: preprocess.py\n")
    assert [(p.line, p.field, p.message) for p in found] == [
        (2, "a.script", "required field is missing"),
        (4, "a.scirpt", "unknown field"),
    ]
    assert found[1].fix == "did you mean `script`?"


def test_a_bad_top_level_section_is_reported_at_its_line(problems: Problems) -> None:
    [problem] = problems(
        """\
models:
  small:
    provider: llama_cpp
    price: {input_per_1m: -1}
workflow:
  - name: a
    type: transform
    script: preprocess.py
"""
    )
    assert (problem.line, problem.field) == (4, "models.small.price.input_per_1m")


def test_every_problem_is_reported_at_once_sorted_by_line(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(RESOURCES / "broken", folder)
    with pytest.raises(SpecError) as info:
        load_spec(folder / "workflow.yaml")
    found = [(Path(p.file).name, p.line, p.field) for p in info.value.problems]
    assert found == [
        ("workflow.yaml", 7, "ingest.source"),
        ("workflow.yaml", 11, "clean.retry.attempts"),
        ("workflow.yaml", 14, "answer.model"),
        ("workflow.yaml", 16, "answer.depends_on"),
        ("workflow.yaml", 22, "gate.min_confidence"),
        ("workflow.yaml", 23, "check.name"),
        ("answer.jinja", 4, "answer.prompt_template"),
        ("rules.json", 5, "check.ruleset"),
    ]
    # `clean` failed to load, yet depending on it is not "unknown"
    assert "'enrich'" in info.value.problems[3].message
    assert "agent #4" in info.value.problems[5].message
    assert str(info.value).count("\n") == 7


def test_defaults_apply_to_agents_that_do_not_set_their_own(write: Write) -> None:
    wf = load_spec(
        write(
            """\
models:
  small: {provider: llama_cpp}
defaults:
  retry: {attempts: 3}
  timeout: 5
  model: small
workflow:
  - name: a
    type: transform
    script: preprocess.py
    timeout: 9
  - name: b
    type: inference
    prompt: "Say hi to {{ data.name }}"
"""
        )
    )
    a, b = wf.agents
    assert isinstance(a, TransformConfig) and isinstance(b, InferenceConfig)
    assert (a.retry, a.timeout) == (RetryPolicy(attempts=3), 9)
    assert (b.retry.attempts, b.timeout, b.model) == (3, 5, "small")


def test_bad_defaults_are_reported_once_not_per_agent(problems: Problems) -> None:
    found = problems(
        """\
defaults:
  retry: {attempts: "many"}
workflow:
  - name: a
    type: transform
    script: preprocess.py
  - name: b
    type: transform
    script: preprocess.py
"""
    )
    assert [(p.line, p.field) for p in found] == [(2, "defaults.retry.attempts")]


def test_relative_paths_resolve_beside_the_yaml_not_the_cwd(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "workflow.yaml").write_text(
        "workflow:\n  - name: a\n    type: transform\n    script: preprocess.py\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    wf = load_spec(Path("..") / workdir.name / "workflow.yaml")
    assert wf.file.is_absolute()
    assert wf.base_dir.resolve() == workdir.resolve()
    monkeypatch.chdir(tmp_path)  # base_dir stays right after the cwd changes
    assert (wf.base_dir / "preprocess.py").is_file()


def test_a_file_beside_the_cwd_does_not_count(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "run.py").write_text("")
    (workdir / "w.yaml").write_text(
        "workflow:\n  - name: a\n    type: transform\n    script: run.py\n"
    )
    monkeypatch.chdir(other)
    with pytest.raises(SpecError) as info:
        load_spec(workdir / "w.yaml")
    [problem] = info.value.problems
    assert (problem.line, problem.field) == (4, "a.script")
    assert str(workdir / "run.py") in problem.message


def test_load_spec_text_resolves_against_the_given_file(workdir: Path) -> None:
    text = "workflow:\n  - name: a\n    type: transform\n    script: preprocess.py\n"
    assert load_spec_text(text, workdir / "workflow.yaml").name == workdir.name
    with pytest.raises(SpecError, match="file not found"):
        load_spec_text(text, workdir / "templates" / "workflow.yaml")


# Inputs that once escaped as other exceptions (RecursionError, ValueError).


def test_a_self_referencing_alias_is_a_spec_error(problems: Problems) -> None:
    [problem] = problems("workflow: &loop [*loop]\n")
    assert (problem.line, problem.message) == (
        1,
        "alias *loop refers to a value that contains it (a structure without end)",
    )


def test_an_impossible_date_is_reported_at_its_line(problems: Problems) -> None:
    [problem] = problems(
        "workflow:\n  - name: a\n    type: transform\n    script: preprocess.py\n"
        "    description: 2020-13-45\n"
    )
    assert problem.line == 5
    assert problem.message.startswith("invalid YAML: cannot read '2020-13-45' as timestamp")


@pytest.mark.parametrize(
    ("tagged", "message"), [("!!int soon", "'soon' as int"), ("!!int", "'' as int")]
)
def test_a_bad_explicit_tag_is_reported_at_its_line(
    problems: Problems, tagged: str, message: str
) -> None:
    [problem] = problems(f"workflow:\n  - name: a\n    timeout: {tagged}\n")
    assert problem.line == 3
    assert f"cannot read {message}" in problem.message


def test_absurd_nesting_is_a_spec_error(problems: Problems) -> None:
    [problem] = problems("workflow: " + "[" * 3000 + "]" * 3000 + "\n")
    assert problem.message == "invalid YAML: the document is nested too deeply"


def test_an_unhashable_key_is_a_spec_error(problems: Problems) -> None:
    [problem] = problems("workflow:\n  - ? [a, b]\n    : x\n")
    assert problem.line == 2
    assert "unhashable key" in problem.message
