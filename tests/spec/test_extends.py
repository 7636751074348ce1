"""``extends:``: a file that adds sections to a workflow without editing it — merging, paths,
names and versions, and every problem reported in the file that wrote the value."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from relayflow.errors import Problem, SpecError
from relayflow.providers.llama_cpp import LlamaCppConfig
from relayflow.spec.loader import load_spec
from tests.spec.conftest import RESOURCES, Write


@pytest.fixture
def seed_base(workdir: Path) -> Path:
    """The seed's folder with its workflow.yaml, into which `write` puts overlays."""
    shutil.copy(RESOURCES / "seed" / "workflow.yaml", workdir / "workflow.yaml")
    return workdir


def _problems(path: Path) -> list[Problem]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value.problems


def test_an_overlay_maps_the_seeds_alias_and_leaves_its_agents_as_written(
    seed_base: Path, write: Write
) -> None:
    base = load_spec(seed_base / "workflow.yaml")
    overlay = write(
        """\
        extends: workflow.yaml
        models:
          gpt-5x: {provider: openai, model: smollm2, base_url: "http://127.0.0.1:8080/v1"}
        """,
        "mapped.yaml",
    )
    workflow = load_spec(overlay)
    assert workflow.agents == base.agents and workflow.depends_on == base.depends_on
    [(alias, mapped)] = workflow.spec.models.items()
    assert alias == "gpt-5x" and (mapped.provider, mapped.model) == ("openai", "smollm2")
    # the workflow is still the seed's: same name, paths from its folder; a new version
    assert (workflow.name, workflow.file, workflow.extends) == (
        base.name,
        overlay.absolute(),
        (seed_base / "workflow.yaml").absolute(),
    )
    assert workflow.base_dir == seed_base.absolute() and workflow.version != base.version
    # editing the base changes the overlay's version too
    (seed_base / "workflow.yaml").write_text(
        (seed_base / "workflow.yaml").read_text() + "# edited\n"
    )
    assert load_spec(overlay).version != workflow.version


def test_mapping_sections_merge_entry_by_entry_and_other_values_replace(
    write: Write, workdir: Path
) -> None:
    write(
        """\
        name: base
        compute_rate_per_cpu_second: 0.5
        models:
          fast: {provider: llama_cpp, context: 512}
          slow: {provider: llama_cpp, context: 4096}
        workflow:
          - name: Ask
            type: inference
            model: fast
            prompt: "{{ q }}"
        """
    )
    overlay = write(
        """\
        extends: workflow.yaml
        compute_rate_per_cpu_second: 2.0
        models:
          fast: {provider: llama_cpp, threads: 2}
        evaluate: {metric: rouge}
        """,
        "more.yaml",
    )
    spec = load_spec(overlay).spec
    assert spec.compute_rate_per_cpu_second == 2.0 and spec.name == "base"
    # an entry is replaced whole (fast loses context: 512); the base's other entries stay
    assert spec.models["fast"].model_dump() == LlamaCppConfig(threads=2).model_dump()
    slow = spec.models["slow"]
    assert isinstance(slow, LlamaCppConfig) and slow.context == 4096
    assert spec.evaluate is not None and spec.evaluate.metric == "rouge"


def test_each_problem_names_the_file_and_line_that_wrote_it(seed_base: Path, write: Write) -> None:
    overlay = write(
        """\
        extends: workflow.yaml
        models:
          other:
            provider: llama_cpp
        evaluate:
          golden: missing.jsonl
        """,
        "mapped.yaml",
    )
    assert [str(p) for p in _problems(overlay)] == [
        f"{overlay}:6: evaluate.golden: file not found: {seed_base / 'missing.jsonl'} — create "
        "the golden set or fix the path (relative to the YAML)",
        f"{seed_base / 'workflow.yaml'}:10: LLMInferenceAgent.model: model alias 'gpt-5x' is not "
        "defined — define it under `models:` or use one of: other",
    ]
    bad = write("extends: workflow.yaml\nmodels:\n  gpt-5x: {provider: nope}\n", "bad.yaml")
    [problem] = _problems(bad)
    assert (problem.file, problem.line, problem.field) == (str(bad), 3, "models.gpt-5x.provider")


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("extends: nowhere.yaml\n", 1, "extends", "file not found: "),
        ("extends: [a, b]\n", 1, "extends", "must be a file path"),
        (
            "extends: workflow.yaml\nworkflow:\n  - {name: A, type: transform, script: x.py}\n",
            2,
            "workflow",
            "a file that extends another cannot list agents",
        ),
    ],
)
def test_a_bad_extends_says_how_to_fix_it(
    seed_base: Path, write: Write, text: str, line: int, field: str, message: str
) -> None:
    overlay = write(text, "mapped.yaml")
    [problem] = _problems(overlay)
    assert (problem.file, problem.line, problem.field) == (str(overlay), line, field)
    assert problem.message.startswith(message) and problem.fix


def test_chains_are_refused_at_the_base_that_extends(seed_base: Path, write: Write) -> None:
    middle = write("extends: workflow.yaml\n", "middle.yaml")
    top = write("extends: middle.yaml\n", "top.yaml")
    [problem] = _problems(top)
    assert (problem.file, problem.line, problem.field) == (str(middle), 1, "extends")
    assert "cannot extend a third" in problem.message


def test_a_problem_in_a_list_section_of_the_overlay_names_the_overlay(
    seed_base: Path, write: Write
) -> None:
    """`variants[1].name`, `allow[0]`: the index once hid the section, and the problem was
    put in the base, at a line of the overlay."""
    overlay = write(
        "extends: workflow.yaml\nvariants:\n  - name: a\n  - name: 'no spaces'\nallow: [nowhere]\n",
        "ab.yaml",
    )
    found = _problems(overlay)
    assert [(p.file, p.line, p.field) for p in found] == [
        (str(overlay), 4, "variants[1].name"),
        (str(overlay), 5, "allow[0]"),
    ]
