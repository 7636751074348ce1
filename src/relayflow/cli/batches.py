"""``relayflow batches list`` and ``relayflow batches show``: the batches a store knows, how far
each got, and the records of its source that could not become runs."""

from __future__ import annotations

from typing import Annotated

import typer

from relayflow.cli.common import StoreOption, open_store
from relayflow.cli.output import UserError, console, local_time, plural, short

app = typer.Typer(help="List batches and show one with its bad records.", no_args_is_help=True)

#: the order statuses are counted in
STATUSES = ("queued", "running", "waiting_review", "succeeded", "failed", "cancelled")


@app.command("list")
def list_batches(
    workflow: Annotated[
        str | None,
        typer.Option("--workflow", "-w", help="Only this workflow (by name).", show_default=False),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            "-s",
            help="Only batches in this status: running, finished, cancelled, failed.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 20,
    store: StoreOption = None,
) -> None:
    """The latest batches, newest first, with their runs by status and their bad records.

    A batch still `running` after its process died (kill -9, a crash) is resumed with
    `relayflow resume --batch ID`."""
    from rich.table import Table

    reader = open_store(store)
    try:
        records = reader.list_batches(workflow=workflow, status=status, limit=limit)
        counts = reader.batch_counts([r.batch_id for r in records])
    finally:
        reader.close()
    out = console()
    if not records:
        out.print("no batches match", markup=False)
        return
    table = Table()
    table.add_column("batch", no_wrap=True)
    table.add_column("workflow")
    table.add_column("status", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("runs")
    table.add_column("bad", justify="right", no_wrap=True)
    table.add_column("inputs")
    for r in records:
        count = counts.get(r.batch_id, {})
        table.add_row(
            r.batch_id,
            r.workflow,
            r.status,
            local_time(r.created),
            _runs_text(count),
            str(count.get("bad", 0)),
            short(r.inputs or "(the workflow's source)", 40),
        )
    out.print(table)


@app.command("show")
def show(
    batch_id: Annotated[str, typer.Argument(help="The batch id.", show_default=False)],
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="At most this many bad records.")
    ] = 100,
    store: StoreOption = None,
) -> None:
    """One batch: where it came from, its runs by status, and each bad record of its source
    (file:line, why, the start of its text). Bad records are skipped again on resume."""
    from rich.table import Table

    reader = open_store(store)
    try:
        record = reader.get_batch(batch_id)
        if record is None:
            raise UserError(f"no batch {batch_id!r} in the store; see `relayflow batches list`")
        count = reader.batch_counts([batch_id])[batch_id]
        bad = reader.bad_records(batch_id, limit=limit)
    finally:
        reader.close()
    out = console()

    def say(line: str) -> None:
        out.print(line, markup=False, soft_wrap=True)

    say(f"batch {record.batch_id}  {record.status}")
    say(f"workflow {record.workflow} ({record.workflow_file})")
    say(f"inputs {record.inputs or '(the workflow source)'}  concurrency {record.concurrency}")
    say(f"created {local_time(record.created)}  updated {local_time(record.updated)}")
    say(f"runs: {_runs_text(count)}")
    total_bad = count.get("bad", 0)
    if bad:
        table = Table(title=f"{plural(total_bad, 'bad record')} (not run; skipped on resume)")
        table.add_column("where", no_wrap=True)
        table.add_column("why")
        table.add_column("text")
        for b in bad:
            table.add_row(b.location, b.reason, short(b.excerpt, 60))
        out.print(table)
        if total_bad > len(bad):
            say(f"… and {total_bad - len(bad)} more: --limit {total_bad}")
    unfinished = sum(count.get(s, 0) for s in ("queued", "running", "failed", "cancelled"))
    if unfinished or record.status in ("running", "cancelled", "failed"):
        say(f"resume or retry with relayflow resume --batch {record.batch_id}")


def _runs_text(count: dict[str, int]) -> str:
    parts = [f"{count[s]} {s}" for s in STATUSES if count.get(s)]
    return ", ".join(parts) or "none"
