"""``relayflow feedback add``: record a label for a workflow (what a run should have output)."""

from __future__ import annotations

from typing import Annotated

import typer

from relayflow.cli.common import StoreOption, find_run, open_store, store_for_writing
from relayflow.cli.output import note, parse_json_object

app = typer.Typer(help="Labels that feed evaluation and retraining.", no_args_is_help=True)


@app.command("add")
def add(
    workflow: Annotated[
        str, typer.Argument(help="The workflow's name, or its YAML file.", show_default=False)
    ],
    label: Annotated[
        str, typer.Option("--label", "-l", help="The label as a JSON object.", show_default=False)
    ],
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run", help="The run the label is about (or an id prefix).", show_default=False
        ),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Store a label for WORKFLOW, optionally tied to a run."""
    from relayflow.store.sql_store import SqlStore

    value = parse_json_object(label, "--label")
    name = _workflow_name(workflow)
    item_key = None
    if run_id is not None:
        reader = open_store(store)
        try:
            run = find_run(reader, run_id)
        finally:
            reader.close()
        if run.workflow != name:
            typer.echo(
                f"error: run {run.run_id} belongs to workflow {run.workflow!r}, not {name!r}",
                err=True,
            )
            raise typer.Exit(1)
        run_id, item_key = run.run_id, run.item_key
    writer = SqlStore(store_for_writing(store))
    try:
        writer.add_feedback(name, value, run_id=run_id, item_key=item_key)
    finally:
        writer.close()
    note(f"feedback recorded for {name}" + (f" (run {run_id})" if run_id else ""))


def _workflow_name(workflow: str) -> str:
    """A YAML path is loaded for its workflow name; anything else is the name itself."""
    if workflow.endswith((".yaml", ".yml")):
        from relayflow.cli.common import load_workflow

        return load_workflow(workflow).name
    return workflow
