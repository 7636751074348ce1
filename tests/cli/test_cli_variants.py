"""A/B variants on the command line: `relayflow run` routes each item to its sticky variant
(or the one --variant names) and records it as NAME@VARIANT; resume finds the variant again;
`relayflow variants list|assign|rollout`; `relayflow bench` compares the variants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.test_bench_runner import numbers
from tests.cli.cli_support import Cli, batch_id_of

VARIANTS = """variants:
  - name: control
    weight: 0.5
  - name: triple
    weight: 0.5
    agents:
      Double: {script: triple.py}
"""
TRIPLE = """
def transform(record):
    return {**record, "doubled": record["n"] * 3}
"""


def ab(cli: Cli) -> Path:
    path = cli.linear()
    cli.write("triple.py", TRIPLE)
    path.write_text(path.read_text() + VARIANTS)
    return path


def expected_variant(cli: Cli, path: Path, key: str) -> str:
    result = cli("variants", "assign", path, key)
    assert result.exit_code == 0, result.output
    return result.stdout.split()[1]


def test_run_routes_each_item_to_its_sticky_variant(cli: Cli) -> None:
    path = ab(cli)
    items = [{"id": f"k{i}", "n": i} for i in range(12)]
    cli.write("items.jsonl", "".join(json.dumps(r) + "\n" for r in items))
    result = cli("run", path, "--inputs", "items.jsonl", "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 12
    with cli.store() as store:
        runs = {r.run_id: r for r in store.list_runs(limit=100)}
    seen = set()
    for line in lines:
        record = runs[line["run_id"]]
        key = record.input["id"]
        variant = expected_variant(cli, path, key)
        assert record.workflow == f"numbers@{variant}"
        factor = 3 if variant == "triple" else 2
        assert line["output"]["doubled"] == record.input["n"] * factor
        seen.add(variant)
    assert seen == {"control", "triple"}  # 12 keys at 50/50: both get some
    batch = batch_id_of(result.stderr)
    assert "variant control (50%): relayflow resume --batch" in result.stderr
    assert f"{batch}@triple" in result.stderr and f"{batch}@control" in result.stderr


def test_one_input_gets_its_variant_and_variant_forces_one(cli: Cli) -> None:
    path = ab(cli)
    variant = expected_variant(cli, path, "x1")
    result = cli("run", path, "--input", '{"id": "x1", "n": 5}')
    assert result.exit_code == 0, result.output
    assert f"variant {variant} (assigned by key x1)" in result.stderr
    assert json.loads(result.stdout)["doubled"] == (15 if variant == "triple" else 10)
    forced = cli("run", path, "--variant", "triple", "--input", '{"id": "x1", "n": 5}')
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)["doubled"] == 15
    with cli.store() as store:
        assert store.list_runs(limit=1)[0].workflow == "numbers@triple"
    bad = cli("run", path, "--variant", "nope", "--input", '{"n": 1}')
    assert bad.exit_code == 1
    assert "no variant 'nope' — use one of: control, triple" in bad.stderr


def test_a_parked_variant_run_resumes_as_its_variant(cli: Cli) -> None:
    path = cli.reviewed()
    cli.write("label2.py", 'def transform(record):\n    return {**record, "label": "ham"}\n')
    path.write_text(
        path.read_text()
        + "variants:\n  - name: control\n  - name: ham\n    agents:\n"
        + "      Label: {script: label2.py}\n"
    )
    result = cli("run", path, "--variant", "ham", "--input", '{"text": "hi"}')
    assert result.exit_code == 0, result.output
    with cli.store() as store:
        [run] = store.list_runs()
        [review] = store.reviews()
    assert (run.workflow, run.status) == ("reviewed@ham", "waiting_review")
    decided = cli("review", "approve", review.review_id)
    assert decided.exit_code == 0, decided.output
    with cli.store() as store:
        done = store.get_run(run.run_id)
    assert done is not None and done.status == "succeeded"
    assert done.output is not None and done.output["label"] == "ham"


def test_variants_list_shows_weights_and_live_figures(cli: Cli) -> None:
    path = ab(cli)
    cli.write("items.jsonl", "".join(json.dumps({"id": f"k{i}", "n": i}) + "\n" for i in range(8)))
    assert cli("run", path, "--inputs", "items.jsonl").exit_code == 0
    plain = cli("variants", "list", path)
    assert plain.exit_code == 0, plain.output
    assert "control" in plain.stdout and "(the workflow as written)" in plain.stdout
    assert 'Double.script="triple.py"' in plain.stdout and "50%" in plain.stdout
    live = cli("variants", "list", path, "--store", cli.store_path)
    assert live.exit_code == 0, live.output
    with cli.store() as store:
        counts = {
            name: len(store.list_runs(workflow=f"numbers@{name}")) for name in ("control", "triple")
        }
    assert sum(counts.values()) == 8
    for name, count in counts.items():
        row = next(line for line in live.stdout.splitlines() if f" {name} " in line)
        assert f"{count} / 0 / 0" in row


def test_rollout_rewrites_the_weights_in_the_file(cli: Cli) -> None:
    path = ab(cli)
    result = cli("variants", "rollout", path, "triple")
    assert result.exit_code == 0, result.output
    assert "triple: 50% → 75%" in result.stdout and "control: 50% → 25%" in result.stdout
    assert "    weight: 0.75\n" in path.read_text()
    result = cli("variants", "rollout", path, "triple", "--to", "1")
    assert result.exit_code == 0, result.output
    assert "    weight: 0\n" in path.read_text() and "    weight: 1\n" in path.read_text()
    bad = cli("variants", "rollout", path, "nope")
    assert bad.exit_code == 1 and "no variant 'nope'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["list", "rollout"])
def test_a_workflow_without_variants_is_a_one_line_error(cli: Cli, command: str) -> None:
    path = cli.linear()
    args = [path, "x"] if command == "rollout" else [path]
    result = cli("variants", command, *args)
    assert result.exit_code == 1
    assert "has no variants: section" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bench_compares_the_variants_on_the_same_items(cli: Cli) -> None:
    path = numbers(cli.folder)
    cli.write(
        "right.py",
        "def transform(record):\n"
        '    return {**record, "label": "high" if record["value"] > 5 else "low"}\n',
    )
    path.write_text(
        path.read_text()
        + "variants:\n  - name: control\n  - name: right\n    agents:\n"
        + "      Label: {script: right.py}\n"
    )
    result = cli("bench", path, "--warmup", 0)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "numbers@control" in out and "numbers@right" in out
    assert "variants on the same items" in out and "control (baseline)" in out
    assert "winner: right" in out and "right ★" in out
    data = json.loads((cli.folder / ".relayflow/bench/bench.json").read_text())
    assert [w["variant"] for w in data["workflows"]] == ["control", "right"]
    [experiment] = data["experiments"]
    assert experiment["baseline"] == "control" and experiment["winner"] == "right"
    [comparison] = experiment["comparisons"]
    assert comparison["n"] == 6 and comparison["agent_metric"]["mean_diff"] == pytest.approx(1 / 6)
    assert comparison["metric_significant"] is False
    report = (cli.folder / ".relayflow/bench/report.html").read_text()
    assert "<h2>Variants</h2>" in report and "right ★" in report

    only = cli("bench", path, "--warmup", 0, "--no-variants")
    assert only.exit_code == 0, only.output
    assert "numbers@" not in only.stdout
