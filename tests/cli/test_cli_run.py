"""`relayflow run` and `relayflow resume`: one item, a batch file, the workflow's own source,
the summary, exit codes, and resuming failed runs and batches."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from relayflow.engine.runner import Runner
from relayflow.spec.loader import load_spec
from tests.cli.cli_support import Cli, batch_id_of, summary_value

#: fails until a file named `fixed` exists beside the script
FLAKY = """
from pathlib import Path

def transform(record):
    if not (Path(__file__).parent / "fixed").exists():
        raise RuntimeError("not fixed yet")
    return {**record, "fixed": True}
"""

FLAKY_WORKFLOW = """
name: flaky
workflow:
  - name: Double
    type: transform
    script: double.py
    run_in: inline
  - name: Flaky
    type: transform
    script: flaky.py
    run_in: inline
"""

SOURCED = """
name: sourced
workflow:
  - name: Items
    type: retrieval
    source: items.jsonl
  - name: Double
    type: transform
    script: double.py
    run_in: inline
"""


def jsonl(*records: Mapping[str, object]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_run_one_input_prints_its_output_as_json(cli: Cli) -> None:
    wf = cli.linear()
    result = cli("run", wf, "--input", '{"n": 21}')
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"n": 21, "doubled": 42, "done": True}
    assert "succeeded" in result.stderr
    assert cli.store_path.exists()  # the default store, beside the current directory


def test_run_one_input_as_a_json_line(cli: Cli) -> None:
    wf = cli.linear()
    result = cli("run", wf, "--input", '{"n": 1}', "--json")
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout)
    assert line["status"] == "succeeded"
    assert line["output"] == {"n": 1, "doubled": 2, "done": True}
    with cli.store() as store:
        record = store.get_run(line["run_id"])
    assert record is not None and record.status == "succeeded"


def test_a_failed_run_exits_1_with_one_error_line_and_the_resume_hint(cli: Cli) -> None:
    wf = cli.linear()
    result = cli("run", wf, "--input", '{"n": 1, "bad": true}')
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "bad item" in errors[0]
    assert "relayflow resume " in result.stderr
    assert "Traceback" not in result.output


def test_bad_json_in_input_is_one_error_line(cli: Cli) -> None:
    wf = cli.linear()
    result = cli("run", wf, "--input", "{n: 1}")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: --input is not valid JSON")
    assert len(result.stderr.splitlines()) == 1
    assert not cli.store_path.exists()  # nothing ran


def test_input_and_inputs_together_are_a_usage_error(cli: Cli) -> None:
    wf = cli.linear()
    cli.write("items.jsonl", jsonl({"n": 1}))
    result = cli("run", wf, "--input", '{"n": 1}', "--inputs", "items.jsonl")
    assert result.exit_code == 2


def test_a_missing_inputs_file_is_one_error_line(cli: Cli) -> None:
    wf = cli.linear()
    result = cli("run", wf, "--inputs", "nope.jsonl")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: inputs file not found: nope.jsonl — check the path given to --inputs"
    ]


def test_a_bad_workflow_prints_its_problems_as_errors(cli: Cli) -> None:
    wf = cli.write("bad.yaml", "workflow:\n  - name: A\n    type: transform\n")
    result = cli("run", wf, "--input", "{}")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith(f"error: {wf}:") for line in lines)
    assert "script" in result.stderr
    assert "Traceback" not in result.output


def test_a_workflow_without_source_and_without_inputs_says_what_to_give(cli: Cli) -> None:
    wf = cli.linear()
    result = cli("run", wf)
    assert result.exit_code == 1
    assert "--input" in result.stderr and "--inputs" in result.stderr
    assert "Traceback" not in result.output


def test_run_a_jsonl_batch_counts_its_runs_in_the_summary(cli: Cli) -> None:
    wf = cli.linear()
    cli.write(
        "items.jsonl",
        jsonl({"id": "a", "n": 1}, {"id": "b", "n": 2, "bad": True}, {"id": "c", "n": 3}) + "\n",
    )
    result = cli("run", wf, "--inputs", "items.jsonl", "--concurrency", "2")
    assert result.exit_code == 1  # one run failed
    out = result.stdout
    assert summary_value(out, "runs") == "3"
    assert summary_value(out, "succeeded") == "2"
    assert summary_value(out, "failed") == "1"
    assert summary_value(out, "escalated") == "0"
    assert "(item 1:b)" in out and "bad item" in out
    batch = batch_id_of(out)
    with cli.store() as store:
        statuses = sorted(status for _key, _run, status in store.batch_runs(batch))
        record = store.get_batch(batch)
    assert statuses == ["failed", "succeeded", "succeeded"]
    assert record is not None and record.inputs == str(cli.folder / "items.jsonl")


def test_batch_json_lines_and_limit(cli: Cli) -> None:
    wf = cli.linear()
    cli.write("items.csv", "id,n\n" + "".join(f"r{i},{i}\n" for i in range(10)))
    cli.write("double.py", "def transform(record):\n    return {**record, 'seen': True}\n")
    result = cli("run", wf, "--inputs", "items.csv", "--limit", "4", "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 4
    assert {line["item"] for line in lines} == {"0:r0", "1:r1", "2:r2", "3:r3"}
    assert all(line["status"] == "succeeded" for line in lines)
    assert summary_value(result.stderr, "runs") == "4"  # the summary moves to stderr


def test_the_workflow_source_drives_the_batch_and_limit_stops_it_early(cli: Cli) -> None:
    cli.write("double.py", "def transform(record):\n    return {**record, 'doubled': 2}\n")
    cli.write("items.jsonl", jsonl(*({"id": i} for i in range(6))))
    wf = cli.write("sourced.yaml", SOURCED)
    result = cli("run", wf, "--limit", "2")
    assert result.exit_code == 0, result.output
    assert summary_value(result.stdout, "runs") == "2"
    assert summary_value(result.stdout, "succeeded") == "2"

    # resuming with the same limit finds nothing left to do; without it, the rest runs
    batch = batch_id_of(result.stdout)
    again = cli("resume", "--batch", batch, "--limit", "2")
    assert again.exit_code == 0, again.output
    assert summary_value(again.stdout, "runs") == "0"
    rest = cli("resume", "--batch", batch)
    assert rest.exit_code == 0, rest.output
    assert summary_value(rest.stdout, "runs") == "4"
    with cli.store() as store:
        assert len(list(store.batch_runs(batch))) == 6


def test_resume_a_failed_run_by_id_prefix_finishes_it(cli: Cli) -> None:
    cli.linear()
    cli.write("flaky.py", FLAKY)
    wf = cli.write("flaky.yaml", FLAKY_WORKFLOW)
    first = cli("run", wf, "--input", '{"n": 2}', "--json")
    assert first.exit_code == 1
    run_id = json.loads(first.stdout)["run_id"]

    cli.write("fixed", "")
    result = cli("resume", run_id[:-2])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"n": 2, "doubled": 4, "fixed": True}
    with cli.store() as store:
        steps = {s.step: s for s in store.steps(run_id)}
        assert store.get_run(run_id).status == "succeeded"  # type: ignore[union-attr]
    assert steps["Double"].attempt == 1 and steps["Flaky"].status == "finished"


def test_resume_a_batch_retries_its_failed_runs_without_repeating_the_others(cli: Cli) -> None:
    cli.linear()
    cli.write("flaky.py", FLAKY)
    wf = cli.write("flaky.yaml", FLAKY_WORKFLOW)
    cli.write("items.jsonl", jsonl(*({"id": i, "n": i} for i in range(5))))
    first = cli("run", wf, "--inputs", "items.jsonl")
    assert first.exit_code == 1
    assert summary_value(first.stdout, "failed") == "5"
    batch = batch_id_of(first.stdout)

    cli.write("fixed", "")
    result = cli("resume", "--batch", batch)
    assert result.exit_code == 0, result.output
    assert summary_value(result.stdout, "succeeded") == "5"
    with cli.store() as store:
        runs = list(store.batch_runs(batch))
    assert len(runs) == 5 and {status for *_, status in runs} == {"succeeded"}


def test_resume_a_run_started_outside_the_cli_needs_the_workflow_file(cli: Cli) -> None:
    import asyncio

    cli.linear()
    cli.write("flaky.py", FLAKY)
    wf = cli.write("flaky.yaml", FLAKY_WORKFLOW)
    cli.store_path.parent.mkdir()

    async def start() -> str:
        async with Runner(load_spec(wf), store=str(cli.store_path)) as runner:
            return (await runner.run({"n": 1})).run_id

    run_id = asyncio.run(start())
    cli.write("fixed", "")
    result = cli("resume", run_id)
    assert result.exit_code == 1
    assert "--workflow" in result.stderr
    result = cli("resume", run_id, "--workflow", wf)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["fixed"] is True


def test_unknown_run_and_batch_are_one_error_line(cli: Cli) -> None:
    wf = cli.linear()
    assert cli("run", wf, "--input", '{"n": 1}').exit_code == 0
    for args in (("resume", "ffff"), ("resume", "--batch", "ffff")):
        result = cli(*args)
        assert result.exit_code == 1
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")
    assert cli("resume").exit_code == 2


def test_resume_batch_takes_the_workflow_file_when_it_moved(cli: Cli) -> None:
    cli.linear()
    cli.write("flaky.py", FLAKY)
    wf = cli.write("flaky.yaml", FLAKY_WORKFLOW)
    cli.write("items.jsonl", jsonl({"n": 1}, {"n": 2}))
    batch = batch_id_of(cli("run", wf, "--inputs", "items.jsonl").stdout)
    moved = wf.rename(cli.folder / "moved.yaml")
    cli.write("fixed", "")

    lost = cli("resume", "--batch", batch)
    assert lost.exit_code == 1
    assert lost.stderr.startswith(f"error: the workflow file of batch {batch} is gone")
    wrong = cli("resume", "--batch", batch, cli.linear())
    assert wrong.exit_code == 1 and "ran workflow 'flaky'" in wrong.stderr

    result = cli("resume", "--batch", batch, moved)
    assert result.exit_code == 0, result.output
    assert summary_value(result.stdout, "succeeded") == "2"


def test_the_store_comes_from_the_environment(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    wf = cli.linear()
    elsewhere = cli.folder / "env-store" / "runs.db"
    monkeypatch.setenv("RELAYFLOW_STORE", str(elsewhere))
    line = json.loads(cli("run", wf, "--input", '{"n": 1}', "--json").stdout)
    assert elsewhere.exists() and not cli.store_path.exists()
    assert line["run_id"] in cli("runs", "list").stdout


def test_inputs_of_an_unknown_format_are_refused_before_running(cli: Cli) -> None:
    wf = cli.linear()
    cli.write("items.xml", "<items/>")
    result = cli("run", wf, "--inputs", "items.xml")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot tell the format of items.xml")
    assert not cli.store_path.exists()


def _split_project(cli: Cli) -> Path:
    wf = cli.linear()
    items = [{"id": f"i{n}", "n": n} for n in range(6)]
    cli.write("items.jsonl", "".join(json.dumps(i) + "\n" for i in items))
    golden = [
        {"id": f"i{n}", "doubled": 2 * n if n != 3 else -1, "split": "dev" if n % 2 else "holdout"}
        for n in range(6)
    ]
    cli.write("golden.jsonl", "".join(json.dumps(g) + "\n" for g in golden))
    text = wf.read_text().replace(
        "workflow:\n",
        "evaluate:\n  golden: golden.jsonl\n  key: id\n  prediction: doubled\n"
        "  reference: doubled\nworkflow:\n  - name: Load\n    type: retrieval\n"
        "    source: items.jsonl\n",
    )
    return cli.write("numbers.yaml", text)


def test_split_runs_only_the_items_of_that_golden_split(cli: Cli) -> None:
    wf = _split_project(cli)
    result = cli("run", wf, "--split", "dev", "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(line["output"]["id"] for line in lines) == ["i1", "i3", "i5"]
    # what the agents resolved, judged against the golden set (i3's golden answer differs)
    assert "resolved 3 of 3 runs (100%); doubled right on 2 of the 3" in result.stderr


def test_an_unknown_split_names_the_splits_there_are(cli: Cli) -> None:
    wf = _split_project(cli)
    result = cli("run", wf, "--split", "test")
    assert result.exit_code == 1
    assert "no golden record is in split 'test'; its splits: dev, holdout" in result.stderr
    assert "Traceback" not in result.output


def test_bench_split_measures_only_that_split(cli: Cli) -> None:
    wf = _split_project(cli)
    result = cli("bench", wf, "--split", "holdout", "--warmup", "0", "--out", cli.folder / "b")
    assert result.exit_code == 0, result.output
    bench = json.loads((cli.folder / "b" / "bench.json").read_text())
    [measured] = bench["workflows"]
    assert measured["figures"]["runs"] == 3  # i0, i2, i4 of the six items


def test_the_review_hint_names_a_store_other_than_the_default(cli: Cli) -> None:
    wf = cli.reviewed()
    cli.write("items.jsonl", '{"id": 1}\n')
    other = cli.folder / "elsewhere.db"
    result = cli("run", wf, "--inputs", cli.folder / "items.jsonl", "--store", other)
    assert result.exit_code == 0, result.output
    assert f"1 run waiting for review: relayflow review list --store {other}" in result.output
    default = cli("run", wf, "--inputs", cli.folder / "items.jsonl")
    assert "waiting for review: relayflow review list\n" in default.output
