"""`relayflow bench`: the table beside the seed's figures, bench.json, report.html with embedded
plots, the golden reviewer, and the same one-line errors as `relayflow validate`."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.bench.test_bench_runner import GOLDEN_EVALUATE, numbers
from tests.cli.cli_support import Cli

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def fraud_like(cli: Cli, evaluate: str = GOLDEN_EVALUATE) -> Path:
    """The bench runner's test workflow, named like an example so the seed's row applies."""
    path = numbers(cli.folder, evaluate)
    path.write_text(path.read_text().replace("name: numbers", "name: fraud_detection"))
    return path


def bench_json(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / ".relayflow/bench/bench.json").read_text())
    return data


def test_bench_prints_the_table_and_writes_bench_json_and_report_html(cli: Cli) -> None:
    wf = fraud_like(cli)
    result = cli("bench", wf, "--limit", 6, "--warmup", 1)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "fraud_detection" in out and "Fraud Detection" in out
    for seed in ("seed 1.80 s", "seed $0.045", "seed 99.2 %", "seed 88.5 %"):
        assert seed in out
    assert "83.3 %" in out  # accuracy: 5 of 6 after the golden reviewer's decisions
    assert "golden reviewer" in out and "(3 decisions)" in out

    data = bench_json(cli.folder)
    assert data["reviewer"] == "golden" and data["options"]["limit"] == 6
    (workflow,) = data["workflows"]
    assert workflow["seed"]["title"] == "Fraud Detection"
    assert workflow["figures"]["runs"] == 6 and workflow["figures"]["escalated"] == 3
    assert workflow["figures"]["utilization"] == pytest.approx(21 / 24)
    assert workflow["accuracy"]["value"] == pytest.approx(5 / 6)
    assert workflow["reviews"] == {"approved": 2, "corrected": 1, "unjudged": 0}
    assert [s["step"] for s in workflow["steps"]] == ["Items", "Label", "Review", "Finish"]
    first = workflow["runs"][0]
    assert first["pass"] == 1 and first["ttr"] >= 0 and len(first["steps"]) == 4
    assert Path(data["store"]).parent == cli.folder / ".relayflow" / "bench"

    report = (cli.folder / ".relayflow/bench/report.html").read_text()
    assert report.startswith("<!doctype html>") and "<table>" in report
    assert "Fraud Detection" in report and "golden reviewer" in report
    assert "http://" not in report and "https://" not in report  # nothing to fetch
    if HAS_MATPLOTLIB:
        assert report.count('src="data:image/png;base64,') == 3


def test_without_matplotlib_the_report_has_tables_only_and_says_so(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relayflow.bench.report import NO_MATPLOTLIB

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    result = cli("bench", fraud_like(cli), "--limit", 3, "--warmup", 0)
    assert result.exit_code == 0, result.output
    report = (cli.folder / ".relayflow/bench/report.html").read_text()
    assert NO_MATPLOTLIB in report and "data:image" not in report
    assert "<table>" in report


def test_with_no_reviewer_parked_runs_do_not_complete(cli: Cli) -> None:
    result = cli("bench", fraud_like(cli), "--reviewer", "none", "--warmup", 0, "--runs", 2)
    assert result.exit_code == 0, result.output
    assert "runs that park stay parked" in result.stdout
    (workflow,) = bench_json(cli.folder)["workflows"]
    assert workflow["reviews"] is None
    assert (workflow["figures"]["runs"], workflow["figures"]["parked"]) == (12, 6)
    assert [p["runs"] for p in workflow["passes"]] == [6, 6]


def test_a_workflow_without_evaluate_shows_a_dash_and_says_why_in_the_json(cli: Cli) -> None:
    result = cli("bench", fraud_like(cli, evaluate=""), "--warmup", 0)
    assert result.exit_code == 0, result.output
    assert "accuracy —: the workflow has no evaluate: section" in result.stdout
    (workflow,) = bench_json(cli.folder)["workflows"]
    assert workflow["accuracy"]["value"] is None
    assert "evaluate" in workflow["accuracy"]["reason"]


def test_items_from_a_file_and_a_store_of_ones_own(cli: Cli) -> None:
    wf = fraud_like(cli)
    cli.write("more.jsonl", '{"id": "a", "value": 1}\n{"id": "b", "value": 6}\n')
    store = cli.folder / "mine.db"
    result = cli("bench", wf, "--inputs", "more.jsonl", "--store", store, "--warmup", 0)
    assert result.exit_code == 0, result.output
    data = bench_json(cli.folder)
    assert data["store"] == str(store) and store.exists()
    assert data["workflows"][0]["figures"]["runs"] == 2


def test_inputs_go_with_one_workflow_file_only(cli: Cli) -> None:
    wf = fraud_like(cli)
    cli.write("more.jsonl", '{"id": "a", "value": 1}\n')
    result = cli("bench", wf, wf, "--inputs", "more.jsonl")
    assert result.exit_code == 2
    assert "give --inputs with one workflow file" in result.output


def test_a_missing_or_invalid_file_prints_what_validate_prints(cli: Cli) -> None:
    bad = cli.write("broken.yaml", "workflow:\n  - name: A\n    type: no_such_type\n")
    good = fraud_like(cli)
    for files in (["missing.yaml"], [str(bad)], [str(good), "missing.yaml", str(bad)]):
        expected = cli("validate", *files).stderr.splitlines()
        result = cli("bench", *files)
        assert result.exit_code == 1
        assert result.stderr.splitlines() == [line for line in expected if line]
        assert len(expected) >= len(files) - 1 and "Traceback" not in result.output
        assert not (cli.folder / ".relayflow/bench/bench.json").exists()  # nothing ran
