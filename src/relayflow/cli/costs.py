"""``relayflow costs``: model spend per workflow, agent, model or day, as a table, bars and a
plot, with the budget alerts the store recorded."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from relayflow.cli.common import StoreOption, open_store
from relayflow.cli.output import UserError, console, local_time, print_json
from relayflow.core.money import money

if TYPE_CHECKING:
    from relayflow.store.records import SpendRecord


class By(StrEnum):
    workflow = "workflow"
    agent = "agent"
    model = "model"
    day = "day"


@dataclass
class Group:
    """What one row of the table adds up."""

    cost: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    runs: set[str] = field(default_factory=set)

    def add(self, record: SpendRecord) -> None:
        self.cost += record.cost
        self.input_tokens += record.input_tokens
        self.output_tokens += record.output_tokens
        self.calls += record.model_calls
        self.runs.add(record.run_id)


def day_of(ts: float | None) -> str:
    """The UTC day of ``ts`` (budgets' days are UTC days too)."""
    return time.strftime("%Y-%m-%d", time.gmtime(ts or 0))


def key_of(record: SpendRecord, by: By) -> str:
    if by is By.workflow:
        return record.workflow
    if by is By.agent:
        return f"{record.workflow}/{record.step}"
    if by is By.model:
        return record.model or "-"
    return day_of(record.started)


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """``2026-11-01`` (UTC), an ISO time, or ``7d`` / ``12h`` ago; None when not given."""
    if not text:
        return None
    now = time.time() if now is None else now
    unit = {"d": 86400, "h": 3600}.get(text[-1:])
    if unit is not None and text[:-1].isdigit():
        return now - int(text[:-1]) * unit
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"--since {text!r} is not a date: write 2026-11-01, 2026-11-01T08:00 or 7d"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def group(records: Sequence[SpendRecord], by: By) -> dict[str, Group]:
    groups: dict[str, Group] = defaultdict(Group)
    for record in records:
        groups[key_of(record, by)].add(record)
    return dict(groups)


def costs(
    by: Annotated[
        By, typer.Option("--by", "-b", help="Group the spend by this.", case_sensitive=False)
    ] = By.workflow,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only spend from then on: 2026-11-01 (UTC), an ISO time, or 7d / 12h ago.",
            show_default=False,
        ),
    ] = None,
    workflow: Annotated[
        str | None,
        typer.Option("--workflow", "-w", help="Only this workflow (by name).", show_default=False),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Also write a PNG: the spend per day, stacked by the --by groups.",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    store: StoreOption = None,
) -> None:
    """Model spend (cost, tokens, calls, runs) from the run store, grouped by workflow, agent,
    model or UTC day, with the spend per day as bars and the budget alerts."""
    start = parse_since(since)
    reader = open_store(store)
    try:
        records = reader.spend(since=start, workflow=workflow)
        alerts = reader.budget_alerts(since=start)
    finally:
        reader.close()
    if not records and not alerts:
        where = f" since {since}" if since else ""
        raise UserError(f"no model spend in {reader.url}{where}: run a workflow that calls a model")
    groups = group(records, by)
    order = (
        sorted(groups, key=lambda k: (-groups[k].cost, k)) if by is not By.day else sorted(groups)
    )
    if as_json:
        print_json(
            [
                {
                    by.value: key,
                    "cost": groups[key].cost,
                    "input_tokens": groups[key].input_tokens,
                    "output_tokens": groups[key].output_tokens,
                    "calls": groups[key].calls,
                    "runs": len(groups[key].runs),
                }
                for key in order
            ]
        )
        return
    out = console()
    if records:
        out.print(_table(groups, order, by))
        out.print(_day_bars(records))
    if alerts:
        out.print(_alerts(alerts))
    if plot is not None:
        write_plot(records, by, plot)
        out.print(f"plot written to {plot}", markup=False)


def _table(groups: dict[str, Group], order: list[str], by: By) -> Any:
    from rich.table import Table

    total = sum(g.cost for g in groups.values())
    table = Table(title=f"model spend by {by.value}", show_footer=True)
    everything = Group()
    for g in groups.values():
        everything.cost += g.cost
        everything.input_tokens += g.input_tokens
        everything.output_tokens += g.output_tokens
        everything.calls += g.calls
        everything.runs |= g.runs
    table.add_column(by.value, footer="total")
    for name, value in (
        ("cost", money(everything.cost)),
        ("share", "100%"),
        ("input tokens", f"{everything.input_tokens:,}"),
        ("output tokens", f"{everything.output_tokens:,}"),
        ("calls", f"{everything.calls:,}"),
        ("runs", f"{len(everything.runs):,}"),
        ("per run", money(everything.cost / len(everything.runs)) if everything.runs else "-"),
    ):
        table.add_column(name, justify="right", footer=value, no_wrap=True)
    for key in order:
        g = groups[key]
        table.add_row(
            key,
            money(g.cost),
            f"{g.cost / total:.0%}" if total else "-",
            f"{g.input_tokens:,}",
            f"{g.output_tokens:,}",
            f"{g.calls:,}",
            f"{len(g.runs):,}",
            money(g.cost / len(g.runs)) if g.runs else "-",
        )
    return table


def _day_bars(records: Sequence[SpendRecord]) -> Any:
    """The spend of each UTC day as a bar, so the trend shows without a plot file."""
    from rich.bar import Bar
    from rich.table import Table

    days = group(records, By.day)
    top = max((g.cost for g in days.values()), default=0.0)
    table = Table(title="spend per day (UTC)", show_edge=False, box=None)
    table.add_column("day", no_wrap=True)
    table.add_column("cost", justify="right", no_wrap=True)
    table.add_column("", width=40, no_wrap=True)
    for day in sorted(days):
        cost = days[day].cost
        table.add_row(day, money(cost), Bar(size=top or 1.0, begin=0, end=cost, width=40))
    return table


def _alerts(alerts: Sequence[Any]) -> Any:
    from rich.table import Table

    table = Table(title="budget alerts")
    table.add_column("last", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("calls refused", justify="right")
    table.add_column("alert")
    for alert in alerts:
        refused = str(alert.count) if alert.kind.startswith("hard") else "-"
        table.add_row(local_time(alert.last), alert.kind, refused, alert.message)
    return table


def write_plot(records: Sequence[SpendRecord], by: By, path: Path) -> None:
    """A PNG of the spend per UTC day, each bar stacked by the ``by`` groups (by workflow when
    grouping by day)."""
    try:
        import matplotlib
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install 'relayflow[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stack = By.workflow if by is By.day else by
    days = sorted({day_of(r.started) for r in records})
    cost: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(days, 0.0))
    for record in records:
        cost[key_of(record, stack)][day_of(record.started)] += record.cost
    order = sorted(cost, key=lambda k: -sum(cost[k].values()))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(days) + 3), 4.5))
    bottom = [0.0] * len(days)
    for key in order:
        heights = [cost[key][day] for day in days]
        ax.bar(days, heights, bottom=bottom, label=key)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_ylabel("cost")
    ax.set_title(f"model spend per day (UTC), by {stack.value}")
    ax.legend(fontsize="small", loc="upper left")
    ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    try:
        fig.savefig(path, format="png", dpi=100)
    except OSError as exc:
        raise UserError(f"cannot write the plot to {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
