"""`relayflow validate`: ok lines, every problem on its own line, exit status, no traceback."""

from __future__ import annotations

import pytest

from relayflow.errors import SpecError
from relayflow.spec.loader import load_spec
from tests.cli.cli_support import Cli

BROKEN = """
workflow:
  - name: First
    type: transform
    script: missing.py
  - name: First
    type: no_such_type
  - name: Third
    type: human_review
    depends_on: Nowhere
"""


def test_valid_files_print_ok_with_their_agent_count(cli: Cli) -> None:
    good = cli.linear()
    other = cli.reviewed()
    result = cli("validate", good, other)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"ok: {good} (2 agents)", f"ok: {other} (3 agents)"]
    assert result.stderr == ""


def test_each_problem_is_one_line_on_stderr_exactly_as_the_loader_words_it(cli: Cli) -> None:
    bad = cli.write("broken.yaml", BROKEN)
    with pytest.raises(SpecError) as caught:
        load_spec(bad)
    expected = [str(p) for p in caught.value.problems]
    assert len(expected) >= 2

    result = cli("validate", bad)

    assert result.exit_code == 1
    assert result.stderr.splitlines() == expected
    assert result.stdout == ""
    assert "Traceback" not in result.output


def test_one_bad_file_among_good_ones_fails_the_command(cli: Cli) -> None:
    good = cli.linear()
    result = cli("validate", good, "does-not-exist.yaml")
    assert result.exit_code == 1
    assert f"ok: {good} (2 agents)" in result.stdout
    assert result.stderr.splitlines() == ["does-not-exist.yaml: file not found — check the path"]
    assert "Traceback" not in result.output


def test_invalid_yaml_is_a_problem_with_its_line_not_a_crash(cli: Cli) -> None:
    bad = cli.write("syntax.yaml", "workflow:\n  - name: [unclosed\n")
    result = cli("validate", bad)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{bad}:")
    assert "invalid YAML" in result.stderr
    assert "Traceback" not in result.output


def test_validate_without_a_file_is_a_usage_error(cli: Cli) -> None:
    result = cli("validate")
    assert result.exit_code == 2


def test_an_unexpected_exception_is_one_line_unless_debugging(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(path: object) -> None:
        raise RuntimeError("the disk\nmelted")

    monkeypatch.setattr("relayflow.spec.loader.load_spec", boom)
    good = cli.linear()
    result = cli("validate", good)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: unexpected RuntimeError: the disk melted "
        "(run with RELAYFLOW_DEBUG=1 for the traceback)"
    ]
    assert "Traceback" not in result.output

    monkeypatch.setenv("RELAYFLOW_DEBUG", "1")
    result = cli("validate", good)
    assert isinstance(result.exception, RuntimeError)


def test_a_model_file_still_to_train_is_a_warning_and_the_file_passes(cli: Cli) -> None:
    path = cli.write(
        "workflow.yaml",
        "models:\n  m:\n    provider: sklearn\n    model: clf.joblib\n"
        "workflow:\n  - name: ask\n    type: inference\n    model: m\n    features: [a]\n",
    )
    result = cli("validate", path)
    assert result.exit_code == 0
    assert result.stdout == f"ok: {path} (1 agent)\n"
    [line] = result.stderr.splitlines()
    assert line.startswith(f"warning: {path}:4: models.m.model: model file ")
    assert line.endswith(
        "clf.joblib does not exist yet — create it before running (train and "
        "save the model there), or fix the path (relative to the YAML)"
    )
    (cli.folder / "clf.joblib").write_bytes(b"")
    assert cli("validate", path).stderr == ""
