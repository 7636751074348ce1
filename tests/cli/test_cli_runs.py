"""`relayflow runs list` and `relayflow runs show`: what the store knows, as tables."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.cli.cli_support import Cli


def run_lines(cli: Cli, *inputs: str) -> list[dict[str, Any]]:
    wf = cli.linear()
    lines = []
    for data in inputs:
        result = cli("run", wf, "--input", data, "--json")
        lines.append(json.loads(result.stdout))
    return lines


def test_runs_list_shows_runs_newest_first_and_filters(cli: Cli) -> None:
    ok, bad = run_lines(cli, '{"id": "x", "n": 1}', '{"n": 2, "bad": true}')
    result = cli("runs", "list")
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[1]
    assert [c.strip() for c in header.strip("┃").split("┃")] == [
        "id",
        "workflow",
        "status",
        "started",
        "TTR",
        "batch",
        "item",
    ]
    ids = re.findall(r"^│ (\w+) ", result.stdout, re.MULTILINE)
    assert ids == [bad["run_id"], ok["run_id"]]

    failed = cli("runs", "list", "--status", "failed")
    assert bad["run_id"] in failed.stdout and ok["run_id"] not in failed.stdout
    assert "no runs match" in cli("runs", "list", "--workflow", "other").stdout
    assert len(re.findall(r"^│ \w+ ", cli("runs", "list", "-n", "1").stdout, re.M)) == 1


def test_runs_show_prints_the_header_steps_output_and_error(cli: Cli) -> None:
    ok, bad = run_lines(cli, '{"n": 1}', '{"n": 2, "bad": true}')
    result = cli("runs", "show", ok["run_id"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith(f"run {ok['run_id']}  succeeded\nworkflow numbers")
    rows = re.findall(r"^│ (Double|Finish) +│ transform +│ finished +│ agent +│ +1 │", out, re.M)
    assert rows == ["Double", "Finish"]
    assert "script=" in out
    assert out.split("output:\n", 1)[1].strip() == json.dumps(
        {"n": 1, "doubled": 2, "done": True}, indent=2
    )

    failed = cli("runs", "show", str(bad["run_id"])[:-1])
    assert "failed" in failed.stdout
    assert "error: Double: AgentError" in failed.stdout and "bad item" in failed.stdout


def test_reading_commands_do_not_create_a_store(cli: Cli) -> None:
    for args in (("runs", "list"), ("runs", "show", "abc"), ("review", "list")):
        result = cli(*args)
        assert result.exit_code == 1
        assert result.stderr.startswith("error: no run store at .relayflow/runs.db")
    assert not cli.store_path.parent.exists()


def test_an_explicit_store_is_used_for_writing_and_reading(cli: Cli) -> None:
    wf = cli.linear()
    other = cli.folder / "elsewhere" / "runs.db"
    line = json.loads(cli("run", wf, "--input", '{"n": 1}', "--json", "--store", other).stdout)
    assert other.exists() and not cli.store_path.exists()
    result = cli("runs", "list", "--store", f"sqlite:///{other}")
    assert line["run_id"] in result.stdout


def test_after_a_kill_runs_list_names_the_batch_to_resume(cli: Cli) -> None:
    import time

    from relayflow.core import events as ev
    from relayflow.core.result import Usage

    # what `kill -9` in the middle of a batch leaves: the batch and a run `running`
    cli.store_path.parent.mkdir(parents=True)
    now = time.time()
    with cli.store() as store:
        store.handle(ev.BatchStarted("b-killed", "numbers", "numbers.yaml", "in.jsonl", 4, now))
        store.handle(ev.RunStarted("r-killed", "numbers", "v1", {"n": 1}, now, "b-killed", "0"))
        store.handle(
            ev.StepFinished(
                "r-killed", "Double", "transform", 1, now, now, {"n": 1}, None, Usage(), {}
            )
        )
    listing = cli("runs", "list", "--status", "running")
    assert listing.exit_code == 0, listing.output
    [row] = [line for line in listing.stdout.splitlines() if "r-killed" in line]
    assert [c.strip() for c in row.strip("│").split("│")][5] == "b-killed"

    batches = cli("batches", "list", "--status", "running")
    assert batches.exit_code == 0, batches.output
    assert re.search(r"│ b-killed +│ numbers +│ running +│ .* │ 1 running +│ +0 │", batches.stdout)
    shown = cli("batches", "show", "b-killed")
    assert shown.exit_code == 0, shown.output
    assert "runs: 1 running" in shown.stdout
    assert "resume or retry with relayflow resume --batch b-killed" in shown.stdout
    missing = cli("batches", "show", "nope")
    assert missing.exit_code == 1
    assert missing.stderr == "error: no batch 'nope' in the store; see `relayflow batches list`\n"
