"""`relayflow diagnose`: the last bench (its measured passes, not the warm-up), the latest batch,
--batch and --runs, the table with the bottleneck and its knobs, --json, --html, and the
one-line error when there are no runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.cli_support import Cli
from tests.diagnose.test_diagnose import graded

HAS_MATPLOTLIB = True
try:
    import matplotlib  # noqa: F401
except ImportError:  # pragma: no cover - the dev extra installs it
    HAS_MATPLOTLIB = False


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_without_runs_it_says_what_to_run_first(cli: Cli) -> None:
    wf = graded(cli.folder)
    result = cli("diagnose", wf)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: no runs of workflow 'graded'")
    assert f"relayflow bench {wf}" in lines[0] and "relayflow run" in lines[0]
    assert "Traceback" not in result.output
    assert not cli.store_path.parent.exists()  # reading creates no store


def test_a_batch_that_does_not_exist_is_one_line(cli: Cli) -> None:
    wf = graded(cli.folder)
    assert cli("bench", wf, "--warmup", 0).exit_code == 0
    result = cli("diagnose", wf, "--batch", "nope")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no batch 'nope'")
    assert len(result.stderr.strip().splitlines()) == 1


def test_after_a_bench_it_diagnoses_the_measured_runs(cli: Cli) -> None:
    wf = graded(cli.folder)
    bench = cli("bench", wf, "--warmup", 2, "--concurrency", 1)
    assert bench.exit_code == 0, bench.output
    out = cli.folder / "out"
    result = cli("diagnose", wf, "--json", out / "d.json", "--html", out / "d.html")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Finish ★" in text and "the last bench (1 pass" in text
    assert "bottleneck: Finish, for failures (by the rule)" in text
    assert "rule: the first of failures" in text
    assert "what relayflow optimize would try for Finish" in text and "Finish.cache" in text

    data = read_json(out / "d.json")
    assert data["totals"]["runs"] == 7  # the two warm-up runs are not diagnosed
    assert data["totals"]["agent_score"] == pytest.approx(4 / 7)
    assert data["bottleneck"]["step"] == "Finish"
    assert data["leaders"]["wrong"] == "Label" and data["leaders"]["escalations"] == "Audit"
    steps = {s["step"]: s for s in data["steps"]}
    assert steps["Audit"]["shares"]["escalations"] == pytest.approx(0.75)
    assert steps["Label"]["wrong"] == 3

    report = (out / "d.html").read_text()
    assert report.startswith("<!doctype html>") and "<table>" in report
    assert "class=bottleneck" in report and "Finish.cache" in report
    assert "http://" not in report and "https://" not in report
    if HAS_MATPLOTLIB:
        assert '<img alt="shares per step" src="data:image/png;base64,' in report


def test_the_objective_can_be_named(cli: Cli) -> None:
    wf = graded(cli.folder)
    assert cli("bench", wf, "--warmup", 0).exit_code == 0
    result = cli("diagnose", wf, "--objective", "escalations")
    assert result.exit_code == 0, result.output
    assert "bottleneck: Audit, for escalations (named with --objective)" in result.stdout
    assert "Audit.when" in result.stdout


def test_the_latest_batch_a_named_batch_and_the_last_runs(cli: Cli) -> None:
    wf = graded(cli.folder)
    assert cli("bench", wf, "--warmup", 0).exit_code == 0
    first = cli("run", wf, "--limit", 3)
    assert first.exit_code in (0, 1), first.output  # runs that park for review
    second = cli("run", wf)
    assert second.exit_code in (0, 1), second.output
    with cli.store() as store:
        batches = store.list_batches(workflow="graded")
    newest, older = batches[0], batches[1]

    latest = read_json_of(cli, wf)
    assert latest["source"] == f"batch {newest.batch_id}" and latest["totals"]["runs"] == 7
    # runs left parked (no reviewer): escalations are counted at their gates all the same
    assert latest["totals"]["by_status"]["waiting_review"] == 4

    named = read_json_of(cli, wf, "--batch", older.batch_id)
    assert named["totals"]["runs"] == 3

    last = read_json_of(cli, wf, "--runs", 5)
    assert last["source"] == "the last 5 runs" and last["totals"]["runs"] == 5


def read_json_of(cli: Cli, wf: Path, *args: object) -> dict[str, Any]:
    path = cli.folder / "d.json"
    result = cli("diagnose", wf, "--json", path, *args)
    assert result.exit_code == 0, result.output
    return read_json(path)
