"""A batch whose source has records that cannot be read: each is reported with file:line,
counted in the summary, kept with the batch and listed by `relayflow batches show`, skipped on
`resume --batch`, and `--max-bad-records` stops the batch cleanly. No run is left running."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from tests.cli.cli_support import Cli, batch_id_of, summary_value

#: a transform that adds ``seen``
SEE = "def transform(record):\n    return {**record, 'seen': True}\n"

SOURCED = """
name: sourced
workflow:
  - name: Items
    type: retrieval
    source: in
  - name: See
    type: transform
    script: see.py
"""


def numbered(count: int, bad: dict[int, bytes]) -> bytes:
    """``count`` JSONL lines ``{"id": i}``; line n (1-based) replaced by ``bad[n]``."""
    return b"".join(bad.get(i + 1, json.dumps({"id": i}).encode()) + b"\n" for i in range(count))


def statuses(cli: Cli, batch: str) -> list[str]:
    with cli.store() as store:
        return [status for _key, _run, status in store.batch_runs(batch)]


def test_a_corrupt_line_is_a_bad_record_and_the_batch_goes_on(cli: Cli) -> None:
    # the issue's case: 600 lines, line 400 is not JSON
    wf = cli.linear()
    cli.write("double.py", SEE)
    (cli.folder / "items.jsonl").write_bytes(numbered(600, {400: b"{oops"}))
    result = cli("run", wf, "--inputs", "items.jsonl", "-c", "8")
    assert result.exit_code == 1  # one item did not come through
    assert "Traceback" not in result.output and "error:" not in result.stderr
    out = result.stdout
    assert (summary_value(out, "runs"), summary_value(out, "succeeded")) == ("599", "599")
    assert summary_value(out, "bad records") == "1"
    where = f"{cli.folder}/items.jsonl:400"
    assert f"bad record: {where}: not valid JSON: Expecting property name" in out
    batch = batch_id_of(out)
    assert (
        f"1 bad record skipped (not run, kept with the batch): relayflow batches show {batch}"
        in out
    )
    assert statuses(cli, batch) == ["succeeded"] * 599

    shown = cli("batches", "show", batch)
    assert shown.exit_code == 0, shown.output
    assert "runs: 599 succeeded" in shown.stdout
    assert re.search(rf"│ {re.escape(where)} +│ not valid JSON: .*│ {{oops +│", shown.stdout)

    # resume meets it again: skipped again, nothing run twice, no error
    again = cli("resume", "--batch", batch)
    assert again.exit_code == 1 and "error:" not in again.stderr
    assert (summary_value(again.stdout, "runs"), summary_value(again.stdout, "bad records")) == (
        "0",
        "1",
    )

    # fixed in place, it runs in its own place; the others keep theirs
    (cli.folder / "items.jsonl").write_bytes(numbered(600, {}))
    fixed = cli("resume", "--batch", batch)
    assert fixed.exit_code == 0, fixed.output
    assert summary_value(fixed.stdout, "runs") == "1"
    assert statuses(cli, batch) == ["succeeded"] * 600
    assert "bad record" not in cli("batches", "show", batch).stdout


@pytest.mark.parametrize(
    ("name", "content", "where", "reason"),
    [
        ("items.jsonl", numbered(5, {3: b'{"id": "caf\xe9"}'}), "items.jsonl:3", "not UTF-8 text"),
        (
            "items.jsonl",
            numbered(5, {3: b'{"id": "\\ud800"}'}),
            "items.jsonl:3",
            "id: text with a lone surrogate",
        ),
        ("items.jsonl", numbered(5, {3: b"[1, 2]"}), "items.jsonl:3", "the item is list, not an"),
        ("items.csv", b"id\n0\n1\n\xff\n3\n", "items.csv:4", "not UTF-8 text"),
        ("items.csv", b"id\n0\n1\n2,x\n3\n", "items.csv:4", "the row has more fields"),
        ("items.json", b'[{"id": 0}, {"id": 1}, 2, {"id": 3}]', "items.json#3", "the item is int"),
        (
            "items.json",
            b'[{"id": 0}, {"id": 1}, {"id": "\\udfff"}, {"id": 3}]',
            "items.json#3",
            "id: text with a lone surrogate",
        ),
    ],
)
def test_every_format_of_inputs_reports_its_bad_records_and_runs_the_rest(
    cli: Cli, name: str, content: bytes, where: str, reason: str
) -> None:
    wf = cli.linear()
    cli.write("double.py", SEE)
    (cli.folder / name).write_bytes(content)
    result = cli("run", wf, "--inputs", name)
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "error:" not in result.stderr
    assert summary_value(result.stdout, "bad records") == "1"
    assert summary_value(result.stdout, "succeeded") == str(
        len(statuses(cli, batch_id_of(result.stdout)))
    )
    assert f"bad record: {cli.folder}/{where}: {reason}" in result.stdout
    # the record is stored as it can be shown: a lone surrogate is kept as its escape
    with cli.store() as store:
        [bad] = store.bad_records(batch_id_of(result.stdout))
    assert bad.location == f"{cli.folder}/{where}"
    bad.excerpt.encode("utf-8")


def test_a_damaged_archive_is_one_bad_record_for_its_rest(cli: Cli) -> None:
    wf = cli.linear()
    cli.write("double.py", SEE)
    whole = gzip.compress(numbered(3000, {}))
    (cli.folder / "items.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    result = cli("run", wf, "--inputs", "items.jsonl.gz")
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "error:" not in result.stderr
    ran = int(summary_value(result.stdout, "succeeded"))
    assert 0 < ran < 3000
    assert f"bad record: {cli.folder}/items.jsonl.gz#{ran + 1}: cannot read on from item" in (
        result.stdout
    )


def test_bad_records_of_the_workflows_source_folder(cli: Cli) -> None:
    cli.write("see.py", SEE)
    wf = cli.write("sourced.yaml", SOURCED)
    (cli.folder / "in").mkdir()
    (cli.folder / "in" / "a.jsonl").write_bytes(numbered(3, {2: b"{oops"}))
    (cli.folder / "in" / "b.json").write_text('{"id": ')
    (cli.folder / "in" / "c.csv").write_text("id\n7\n")
    result = cli("run", wf)
    assert result.exit_code == 1
    assert (
        summary_value(result.stdout, "succeeded"),
        summary_value(result.stdout, "bad records"),
    ) == (
        "3",
        "2",
    )
    shown = cli("batches", "show", batch_id_of(result.stdout)).stdout
    assert f"{cli.folder}/in/a.jsonl:2" in shown and f"{cli.folder}/in/b.json:1" in shown
    again = cli("resume", "--batch", batch_id_of(result.stdout))
    assert summary_value(again.stdout, "runs") == "0"
    assert summary_value(again.stdout, "bad records") == "2"


def test_max_bad_records_stops_the_batch_cleanly_and_resume_finishes_it(cli: Cli) -> None:
    wf = cli.linear()
    cli.write("double.py", SEE)
    (cli.folder / "items.jsonl").write_bytes(numbered(60, {11: b"[1]", 21: b"[2]", 31: b"[3]"}))
    result = cli("run", wf, "--inputs", "items.jsonl", "-c", "2", "--max-bad-records", "1")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    batch = batch_id_of(result.stdout)
    assert summary_value(result.stdout, "bad records") == "2"
    assert (
        f"error: the source of batch {batch} has more bad records than the limit of 1 (the "
        f"last: {cli.folder}/items.jsonl:21: the item is list"
    ) in result.stderr
    assert f"resume with relayflow resume --batch {batch}" in result.stderr
    ran = statuses(cli, batch)
    assert ran == ["succeeded"] * 19  # the items before the second bad one, none left running
    with cli.store() as store:
        record = store.get_batch(batch)
    assert record is not None and record.status == "failed"

    rest = cli("resume", "--batch", batch, "--max-bad-records", "3")
    assert rest.exit_code == 1 and "error:" not in rest.stderr  # 3 bad records: allowed
    assert summary_value(rest.stdout, "runs") == "38"
    assert statuses(cli, batch) == ["succeeded"] * 57
