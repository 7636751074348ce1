"""`relayflow costs`: spend from the run store as a table, bars, a PNG plot, and the budget
alerts, after real runs of a per-call priced model under a budget."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import relayflow
from relayflow.govern.ledger import close_ledgers
from tests.cli.cli_support import Cli
from tests.govern.budget_support import scoring_workflow


@pytest.fixture
def spent(cli: Cli) -> Iterator[Cli]:
    """Five runs against a budget of three calls of a cent: three succeed, two are refused."""
    wf = scoring_workflow(cli.folder, "{per: workflow, period: day, currency: 0.03}")

    async def main() -> None:
        async with relayflow.Runner(wf, store=str(cli.store_path)) as runner:
            for i in range(5):
                await runner.run({"amount": i / 10, "age": 0.5})

    cli.store_path.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(main())
    yield cli
    close_ledgers()


def rows(text: str) -> dict[str, list[str]]:
    """The body rows of the first table: first cell -> the other cells."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            out.setdefault(cells[0], cells[1:])
    return out


def test_the_table_adds_up_cost_tokens_calls_and_runs_per_workflow(spent: Cli) -> None:
    result = spent("costs")
    assert result.exit_code == 0, result.output
    table = rows(result.stdout)
    # cost, share, input tokens, output tokens, calls, runs, per run
    assert table["scoring"] == ["$0.03", "100%", "0", "0", "3", "3", "$0.01"]
    assert "spend per day (UTC)" in result.stdout
    assert re.search(r"\d{4}-\d\d-\d\d +\$0\.03 +█+", result.stdout)
    # the budget refused the last two runs, and says so
    assert re.search(r"│ hard currency │ +2 │ budget workflow 'scoring' per day", result.stdout)


@pytest.mark.parametrize(("by", "key"), [("agent", "scoring/Score"), ("model", "fraud")])
def test_spend_groups_by_agent_and_by_model(spent: Cli, by: str, key: str) -> None:
    result = spent("costs", "--by", by, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {by: key, "cost": pytest.approx(0.03), "input_tokens": 0, "output_tokens": 0,
         "calls": 3, "runs": 3}
    ]  # fmt: skip


def test_the_plot_is_a_png_file(spent: Cli) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib (extra: plots) is missing")
    result = spent("costs", "--by", "day", "--plot", "spend.png")
    assert result.exit_code == 0, result.output
    data = (spent.folder / "spend.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    assert "plot written to spend.png" in result.stdout


def test_nothing_since_a_later_date_is_one_line(spent: Cli) -> None:
    result = spent("costs", "--since", "2999-01-01")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no model spend in sqlite:///")
    assert result.stderr.count("\n") == 1


def test_a_bad_since_and_a_missing_store_are_one_line_errors(cli: Cli, tmp_path: Path) -> None:
    missing = cli("costs", "--store", str(tmp_path / "nowhere" / "runs.db"))
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: no run store at ") and missing.stderr.count("\n") == 1
    bad = cli("costs", "--since", "last tuesday")
    assert bad.exit_code == 1
    assert bad.stderr == (
        "error: --since 'last tuesday' is not a date: write 2026-11-01, 2026-11-01T08:00 or 7d\n"
    )
