"""``relayflow runs list`` and ``relayflow runs show``: what the store knows about runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import typer

from relayflow.cli.common import StoreOption, find_run, open_store
from relayflow.cli.output import console, dumps, local_time, seconds, short

app = typer.Typer(help="List runs and show one run step by step.", no_args_is_help=True)


@app.command("list")
def list_runs(
    workflow: Annotated[
        str | None,
        typer.Option("--workflow", "-w", help="Only this workflow (by name).", show_default=False),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            "-s",
            help="Only runs in this status: running, waiting_review, succeeded, failed, cancelled.",
            show_default=False,
        ),
    ] = None,
    batch: Annotated[
        str | None,
        typer.Option("--batch", "-b", help="Only runs of this batch.", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 50,
    store: StoreOption = None,
) -> None:
    """The latest runs, newest first."""
    from rich.table import Table

    reader = open_store(store)
    try:
        records = reader.list_runs(workflow=workflow, status=status, batch_id=batch, limit=limit)
    finally:
        reader.close()
    out = console()
    if not records:
        out.print("no runs match", markup=False)
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("workflow")
    table.add_column("status", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("TTR", justify="right", no_wrap=True)
    # the batch a run belongs to is what `relayflow resume --batch` takes after a crash
    table.add_column("batch", no_wrap=True)
    table.add_column("item")
    for r in records:
        ttr = r.ended - r.started if r.ended is not None else None
        table.add_row(
            r.run_id,
            r.workflow,
            r.status,
            local_time(r.started),
            seconds(ttr),
            r.batch_id or "-",
            short(r.item_key, 40),
        )
    out.print(table)


@app.command("show")
def show(
    run_id: Annotated[
        str, typer.Argument(help="The run (or a unique prefix of its id).", show_default=False)
    ],
    store: StoreOption = None,
) -> None:
    """One run: its header, a table of its steps, its output and its error."""
    from rich.table import Table

    reader = open_store(store)
    try:
        record = find_run(reader, run_id)
        steps = reader.steps(record.run_id)
    finally:
        reader.close()
    out = console()
    ttr = record.ended - record.started if record.ended is not None else None
    header = [
        f"run {record.run_id}  {record.status}",
        f"workflow {record.workflow} (version {record.workflow_version})",
        f"started {local_time(record.started)}  ended {local_time(record.ended)}  "
        f"TTR {seconds(ttr)}",
    ]
    if record.batch_id:
        header.append(f"batch {record.batch_id}  item {record.item_key}")
    if record.waiting_step:
        header.append(
            f"waiting for review at {record.waiting_step}: relayflow review show {record.run_id}"
        )
    for line in header:
        out.print(line, markup=False)
    table = Table(title="steps")
    for name in (
        "step",
        "type",
        "status",
        "actor",
        "attempt",
        "time ms",
        "tokens",
        "cost",
        "confidence",
        "versions",
    ):
        table.add_column(name, justify="right" if name in _NUMERIC else "left")
    for s in steps:
        took = (s.ended - s.started) * 1000 if s.started is not None and s.ended else None
        table.add_row(
            s.step,
            s.agent_type or "-",
            s.status,
            s.actor,
            str(s.attempt),
            f"{took:.2f}" if took is not None else "-",
            str(s.input_tokens + s.output_tokens),
            f"{s.cost:.6f}" if s.cost else "0",
            f"{s.confidence:.2f}" if s.confidence is not None else "-",
            short_versions(s.versions),
        )
    out.print(table)
    if record.output is not None:
        out.print("output:", markup=False)
        out.print(dumps(record.output), markup=False, soft_wrap=True)
    if record.error:
        from relayflow.scrub import scrub

        # errors are scrubbed before they are stored; this masks credential shapes in rows an
        # older relayflow wrote
        out.print(f"error: {scrub(record.error)}", markup=False, soft_wrap=True)


_NUMERIC = {"attempt", "time ms", "tokens", "cost", "confidence"}


def short_versions(versions: Mapping[str, str] | None, width: int = 8) -> str:
    """``script=1a2b3c4d prompt=…``: each version cut to its first ``width`` characters."""
    if not versions:
        return "-"
    return " ".join(f"{key}={str(value)[:width]}" for key, value in versions.items() if value)
