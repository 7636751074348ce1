"""A workflow's ``consumers:`` section works from every command with no option of its own: `run`
(one item and a batch), `resume`, `review approve` and `bench` all attach its consumers, and
`validate` reports a bad entry as one line at its file:line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.cli_support import LINEAR, REVIEWED, Cli
from tests.consumers.plugin import install_tally

JSONL = "consumers:\n  - {type: jsonl, path: events.jsonl}\n"


def events(cli: Cli) -> list[dict[str, Any]]:
    text = (cli.folder / "events.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_run_writes_every_event_of_its_batch_to_the_configured_file(cli: Cli) -> None:
    wf = cli.linear()
    wf.write_text(LINEAR + JSONL)
    result = cli("run", wf, "--input", '{"n": 2}', "--json")
    assert result.exit_code == 0, result.output
    run_id = json.loads(result.stdout)["run_id"]
    names = [e["event"] for e in events(cli)]
    assert names[0] == "batch_started" and names[-1] == "batch_finished"
    assert names.count("step_finished") == 2
    [finished] = [e for e in events(cli) if e["event"] == "run_finished"]
    assert (finished["run_id"], finished["status"]) == (run_id, "succeeded")
    assert finished["output"] == {"n": 2, "doubled": 4, "done": True}


def test_a_review_decision_and_its_resumed_run_reach_the_consumer(cli: Cli) -> None:
    wf = cli.reviewed()
    wf.write_text(REVIEWED + JSONL)
    parked = cli("run", wf, "--input", '{"text": "win money"}', "--json")
    run_id = json.loads(parked.stdout)["run_id"]
    assert "step_escalated" in [e["event"] for e in events(cli)]

    approved = cli("review", "approve", run_id, "--reviewer", "ana")
    assert approved.exit_code == 0, approved.output
    decided = [e for e in events(cli) if e["event"] == "review_decided"]
    assert [(e["run_id"], e["reviewer"]) for e in decided] == [(run_id, "ana")]
    assert events(cli)[-1]["event"] == "run_finished"
    assert events(cli)[-1]["status"] == "succeeded"


def test_a_plugin_consumer_is_attached_to_run(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(install_tally(tmp_path / "site")))
    wf = cli.linear()
    wf.write_text(LINEAR + "consumers:\n  - {type: tally, path: tally.txt}\n")
    result = cli("run", wf, "--input", '{"n": 1}', "--json")
    assert result.exit_code == 0, result.output
    run_id = json.loads(result.stdout)["run_id"]
    assert (cli.folder / "tally.txt").read_text() == f"{run_id} succeeded\n"


def test_validate_reports_a_bad_consumer_as_one_line_at_its_entry(cli: Cli) -> None:
    wf = cli.linear()
    wf.write_text(LINEAR + "consumers:\n  - type: jsnl\n    path: events.jsonl\n")
    line = LINEAR.count("\n") + 2
    result = cli("validate", wf)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{wf}:{line}: consumers[0].type: unknown consumer type 'jsnl' — did you mean `jsonl`?"
    ]
    assert "Traceback" not in result.output


def test_run_refuses_a_bad_consumer_before_running_anything(cli: Cli) -> None:
    wf = cli.linear()
    wf.write_text(LINEAR + "consumers:\n  - {type: jsonl, path: gone/events.jsonl}\n")
    result = cli("run", wf, "--input", '{"n": 1}')
    assert result.exit_code != 0
    assert "consumers[0].path: folder not found" in result.stderr
    assert "Traceback" not in result.output
    assert not cli.store_path.exists()  # refused at load: no store, no run
