"""Fuzzing the loader and `relayflow validate`: whatever the text or the structure, the result is
a loaded workflow or a SpecError whose every problem is one line naming its file — never another
exception — and the command exits 0 or 1 without a traceback."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from relayflow.agents.registry import agent_class, known_types
from relayflow.cli import app
from relayflow.errors import SpecError
from relayflow.schema.file import WorkflowSpec
from relayflow.spec.loader import load_spec, load_spec_text

LOAD = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLI = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workflow's folder with a file of each kind the fuzzed settings may name."""
    path = tmp_path_factory.mktemp("fuzz")
    (path / "t.py").write_text("def transform(record):\n    return record\n")
    (path / "bad.py").write_text("def transform(record:\n")
    (path / "p.jinja").write_text("Hi {{ name }}\n")
    (path / "broken.jinja").write_text("Hi {{ name \n")
    (path / "rules.json").write_text('{"type": "object"}\n')
    (path / "data.jsonl").write_text('{"id": 1}\n')
    (path / "base.yaml").write_text("workflow:\n  - {name: a, type: transform, script: t.py}\n")
    (path / "docs").mkdir()
    return path


def _check(folder: Path, file: Path, load: Any) -> None:
    try:
        load()
    except SpecError as exc:
        assert exc.problems
        for problem in exc.problems:
            text = str(problem)
            assert "\n" not in text and "\r" not in text, text
            assert problem.file.startswith(str(folder)) or problem.file == str(file), text
            assert text.startswith(problem.file)


# -- text ------------------------------------------------------------------------------------

BITS = [
    "workflow:", "- ", "  ", "\n", ": ", "name: a", "type: transform", "type: retrieval",
    "type: inference", "script: t.py", "script: bad.py", "source: 'docs/{{ x }}'", "allow: ",
    "[docs, 'https://kb/']", "&a ", "*a", "<<: *a", "[*a, *a, *a]", "{", "}", "[", "]", ",",
    "!!int ", "!!binary ", "!!set ", "? ", "---", "%TAG ! x", "|", "'", '"', "#", "budgte: ",
    "extends: base.yaml", "x-any: ", "concurrency: x", "\t", "\x00", "\ufeff", "\u2028",
    "2020-13-45", ".inf", "0o17", "~", "prompt_template: broken.jinja", "function: nope",
]  # fmt: skip


@LOAD
@given(text=st.text(max_size=300))
def test_any_text_loads_or_is_a_spec_error(folder: Path, text: str) -> None:
    file = folder / "w.yaml"
    _check(folder, file, lambda: load_spec_text(text, file))


@LOAD
@given(text=st.lists(st.sampled_from(BITS), max_size=50).map("".join))
@example(text="a: &a [*a]\nworkflow: *a\n")
@example(text="x-a: &a {<<: *a}\nworkflow: []\n")
def test_yaml_fragments_load_or_are_spec_errors(folder: Path, text: str) -> None:
    file = folder / "w.yaml"
    _check(folder, file, lambda: load_spec_text(text, file))


# -- structures ------------------------------------------------------------------------------

SECTIONS = sorted({*WorkflowSpec.model_fields, "extends"})
AGENT_KEYS = sorted({key for t in known_types() for key in agent_class(t).Config.model_fields})
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=16)
    | st.sampled_from(
        [
            "t.py", "bad.py", "p.jinja", "broken.jinja", "rules.json", "data.jsonl", "base.yaml",
            "docs", "docs/{{ x }}", "https://{{ h }}/x", "s3://b/{{ k }}", "{{ x | nofilter }}",
            "../../etc/passwd", "/etc/passwd", "a", "b", "label", "json", "schedule", "6h",
            "inline", "thread", "http://127.0.0.1:1", "every 3 runs", "${X}", "gpt", "router",
        ]
    )
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.sampled_from(AGENT_KEYS), inner, max_size=4)
    ),
    max_leaves=16,
)
AGENT = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["a", "b", "c"]) | st.text(max_size=4),
        "type": st.sampled_from([*known_types(), "nope", ""]),
    },
    optional={key: VALUES for key in AGENT_KEYS if key not in ("name", "type")},
)
TOP = st.dictionaries(
    st.sampled_from([*SECTIONS, "budgte", "modles", "concurrency", "triggers", "x-anchors"])
    | st.text(max_size=8),
    VALUES,
    max_size=5,
)


@st.composite
def documents(draw: st.DrawFn) -> str:
    top = draw(TOP)
    if draw(st.booleans()):
        top["workflow"] = draw(st.lists(AGENT | VALUES, max_size=4))
    return yaml.safe_dump(top, allow_unicode=draw(st.booleans()), sort_keys=False)


@LOAD
@given(text=documents())
def test_random_sections_and_agents_load_or_are_spec_errors(folder: Path, text: str) -> None:
    file = folder / "w.yaml"
    _check(folder, file, lambda: load_spec_text(text, file))


# -- the command -----------------------------------------------------------------------------


@CLI
@given(
    text=documents()
    | st.lists(st.sampled_from(BITS), max_size=40).map("".join)
    | st.text(alphabet=string.printable, max_size=200)
)
def test_validate_exits_0_or_1_and_never_shows_a_traceback(folder: Path, text: str) -> None:
    file = folder / "cli.yaml"
    file.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = CliRunner().invoke(app, ["validate", str(file)])
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    assert "error: unexpected" not in result.output  # the command's last-resort message
    if result.exit_code == 0:
        assert result.stdout.startswith(f"ok: {file} ")
        load_spec(file)
    else:
        lines = result.stderr.splitlines()
        assert lines and all(line.startswith(str(folder)) for line in lines), lines
