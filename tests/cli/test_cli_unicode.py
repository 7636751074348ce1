"""A lone surrogate (``"\\ud800"``: valid JSON, not encodable as UTF-8) in what the command line
is given is refused with one line naming where it is, before anything runs or is stored."""

from __future__ import annotations

from tests.cli.cli_support import Cli, summary_value


def test_an_input_with_a_lone_surrogate_is_refused_naming_the_field(cli: Cli) -> None:
    wf = cli.linear()
    result = cli("run", wf, "--input", '{"n": 1, "deep": [{"x": "\\ud800"}]}')
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: --input: deep[0].x: text with a lone surrogate")
    assert "Traceback" not in result.output
    assert not cli.store_path.exists() or cli("runs", "list").stdout.strip() == "no runs match"


def test_an_inputs_item_with_a_lone_surrogate_is_a_bad_record_naming_its_line(cli: Cli) -> None:
    # a bad record of a batch (tests/cli/test_cli_bad_records.py): the others still run
    wf = cli.linear()
    items = cli.write("items.jsonl", '{"n": 1}\n{"n": 2, "\\udc00": 1}\n')
    result = cli("run", wf, "--inputs", items)
    assert result.exit_code == 1, result.output
    assert f"bad record: {items}:2: \ufffd: text with a lone surrogate" in result.output
    assert summary_value(result.stdout, "succeeded") == "1"
    assert "Traceback" not in result.output


def test_a_label_with_a_lone_surrogate_is_refused(cli: Cli) -> None:
    cli.linear()
    result = cli("feedback", "add", "numbers", "--label", '{"y": "\\udfff"}')
    assert result.exit_code != 0
    assert "--label: y: text with a lone surrogate" in result.output
