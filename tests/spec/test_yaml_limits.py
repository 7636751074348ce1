"""The bounds of the one YAML reader: document size, alias uses and expanded values, for the
workflow file, the base it extends and every other caller (a YAML bomb is a one-line SpecError)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from relayflow.ab.rollout import set_weights
from relayflow.errors import SpecError
from relayflow.schema.yaml_lines import MAX_ALIASES, MAX_CHARS, MAX_NODES, parse_yaml
from relayflow.spec.loader import load_spec, load_spec_text


def _bomb(indent: str, levels: int = 9) -> str:
    """Nine lists of nine aliases of the list before: 9**9 values once expanded."""
    lines = [f'{indent}a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"{indent}a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def _source_with(options: str) -> str:
    return (
        "workflow:\n"
        "  - name: Ingest\n"
        "    type: retrieval\n"
        "    source: data.jsonl\n"
        "    storage_options:\n" + options
    )


def _one_problem(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    [problem] = info.value.problems
    assert "\n" not in str(problem)
    return str(problem)


def test_a_yaml_bomb_under_storage_options_is_refused_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text('{"id": 1}\n')
    path = tmp_path / "workflow.yaml"
    path.write_text(_source_with(_bomb("      ")))
    text = _one_problem(path)
    # the first alias use whose list takes the file over the bound: a5 holds 9**6 values
    assert text.startswith(f"{path}:11: ")
    assert "aliases expand the file to more than" in text
    assert "YAML bomb" in text


def test_a_merge_key_bomb_is_refused_too(tmp_path: Path) -> None:
    lines = ["m0: &m0 {" + ", ".join(f"k{i}: {i}" for i in range(9)) + "}"]
    for level in range(1, 9):
        lines.append(f"m{level}: &m{level} {{<<: [{', '.join([f'*m{level - 1}'] * 9)}]}}")
    text = "defaults:\n" + textwrap.indent("\n".join(lines), "  ") + "\nworkflow: []\n"
    with pytest.raises(SpecError) as info:
        load_spec_text(text, tmp_path / "workflow.yaml")
    [problem] = info.value.problems
    assert "aliases expand the file" in problem.message


def test_a_bomb_in_the_base_an_overlay_extends_names_the_base(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(_source_with(_bomb("      ")))
    overlay = tmp_path / "local.yaml"
    overlay.write_text("extends: base.yaml\ndescription: local\n")
    assert _one_problem(overlay).startswith(f"{base}:11: ")


def test_too_many_aliases_are_refused_at_the_first_one_over(tmp_path: Path) -> None:
    refs = "\n".join("    - *x" for _ in range(MAX_ALIASES + 1))
    text = f"description: &x hello\nescalation:\n  many:\n{refs}\nworkflow: []\n"
    with pytest.raises(SpecError) as info:
        load_spec_text(text, tmp_path / "workflow.yaml")
    [problem] = info.value.problems
    assert problem.line == 4 + MAX_ALIASES  # the list starts on line 4
    assert problem.message == f"more than {MAX_ALIASES} aliases (*name) in one file"


def test_as_many_aliases_as_allowed_still_load(tmp_path: Path) -> None:
    refs = ", ".join(["*x"] * MAX_ALIASES)
    data, _ = parse_yaml(f"a: &x [1, 2]\nb: [{refs}]\n")
    assert len(data["b"]) == MAX_ALIASES and data["b"][0] == [1, 2]


def test_a_value_that_contains_itself_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text("workflow: &x [*x]\n", tmp_path / "workflow.yaml")
    [problem] = info.value.problems
    assert (problem.line, problem.message) == (
        1,
        "alias *x refers to a value that contains it (a structure without end)",
    )


def test_a_document_over_the_size_bound_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "workflow.yaml"
    path.write_text("workflow: []\n# " + "x" * MAX_CHARS + "\n")
    text = _one_problem(path)
    assert text.startswith(f"{path}: the file has ")
    assert f"more than the {MAX_CHARS:,} allowed" in text


def test_expanded_values_are_counted_not_written_ones() -> None:
    width = 1000
    row = "[" + ", ".join(["1"] * (width - 1)) + "]"  # a list of width values
    refs = ", ".join(["*r"] * (MAX_NODES // width + 1))
    with pytest.raises(yaml.YAMLError, match="aliases expand"):
        parse_yaml(f"r: &r {row}\nall: [{refs}]\n")
    ok = ", ".join(["*r"] * (MAX_NODES // width - 2))
    data, _ = parse_yaml(f"r: &r {row}\nall: [{ok}]\n")
    assert len(data["all"]) == MAX_NODES // width - 2


def test_the_rollout_editor_reads_through_the_same_bounds() -> None:
    with pytest.raises(yaml.YAMLError, match="aliases expand"):
        set_weights("variants:\n" + _bomb("  "), ["1"])
