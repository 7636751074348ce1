"""``relayflow models``: the versions of models and prompts that retraining registered; promote
one by hand or roll production back to the version before."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from relayflow.cli.common import STORE_ENV, StoreOption, store_location
from relayflow.cli.output import UserError, console, local_time, note, print_json

if TYPE_CHECKING:
    from relayflow.store.registry import ModelVersion, Registry

app = typer.Typer(
    help="Model and prompt versions: list them, promote one, roll production back.",
    no_args_is_help=True,
)

NameArgument = Annotated[
    str, typer.Argument(help="The model alias or inference step.", show_default=False)
]

WorkflowOption = Annotated[
    str | None,
    typer.Option(
        "--workflow",
        "-w",
        help="The workflow whose history to use (each keeps its own). Default: the only one "
        "that has NAME.",
        show_default=False,
    ),
]


def existing_store(store: str | None) -> str:
    """The store location, which must exist (a missing SQLite file is an error, not a new
    file: the registry lives beside the runs it was trained on)."""
    location = store_location(store)
    if "://" in location:
        return location
    path = Path(location).expanduser()
    if not path.exists():
        raise UserError(
            f"no run store at {location}: run a workflow first, "
            f"or point --store (or ${STORE_ENV}) at an existing store"
        )
    return str(path)


def open_registry(store: str | None, workflow: str | None = None) -> Registry:
    from relayflow.store.registry import Registry

    return Registry(existing_store(store), workflow=workflow)


def golden_text(version: ModelVersion) -> str:
    """``f1 0.912 (parent 0.874, 40 rows)`` from the version's golden-set metrics."""
    golden = version.metrics.get("golden")
    if not isinstance(golden, dict):
        return "-"
    return (
        f"{golden.get('metric')} {golden.get('candidate', 0):.3f} "
        f"(parent {golden.get('parent', 0):.3f}, {golden.get('n')} rows)"
    )


@app.command("list")
def list_versions(
    name: Annotated[
        str | None,
        typer.Argument(help="Only this model alias or step.", show_default=False),
    ] = None,
    store: StoreOption = None,
    workflow: WorkflowOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Every registered version, newest first, with its workflow, status and golden-set
    score."""
    registry = open_registry(store, workflow)
    try:
        versions = registry.list(name)
    finally:
        registry.close()
    if as_json:
        print_json(
            [
                {
                    "workflow": v.workflow,
                    "name": v.name,
                    "version": v.version,
                    "kind": v.kind,
                    "status": v.status,
                    "parent": v.parent,
                    "metrics": dict(v.metrics),
                    "target": v.target,
                    "created": v.created,
                }
                for v in versions
            ]
        )
        return
    out = console()
    if not versions:
        what = f"of {name!r} " if name else ""
        out.print(f"no versions {what}in the registry: run `relayflow retrain FILE`", markup=False)
        return
    from rich.table import Table
    from rich.text import Text

    table = Table()
    columns = ("workflow", "name", "version", "kind", "status", "golden", "parent", "created")
    for column in columns:
        table.add_column(column, no_wrap=column != "golden")
    for v in versions:
        cells = (v.workflow, v.name, v.version, v.kind, v.status, golden_text(v), v.parent or "-")
        table.add_row(
            *(Text(c) for c in (*cells, local_time(v.created))),
            style="bold" if v.status == "production" else None,
        )
    out.print(table)


@app.command("promote")
def promote(
    name: NameArgument,
    version: Annotated[
        str, typer.Argument(help="The version (or a unique prefix).", show_default=False)
    ],
    store: StoreOption = None,
    workflow: WorkflowOption = None,
) -> None:
    """Make VERSION the production version of NAME (its file is written where the workflow
    reads it)."""
    registry = open_registry(store, workflow)
    try:
        chosen = registry.promote(name, version, note="promoted by hand")
    finally:
        registry.close()
    where = f": {chosen.target}" if chosen.target else ""
    note(f"{name} {chosen.version} is in production{where}")


@app.command("rollback")
def rollback(
    name: NameArgument, store: StoreOption = None, workflow: WorkflowOption = None
) -> None:
    """Put back the production version of NAME that came before the current one."""
    registry = open_registry(store, workflow)
    try:
        current = registry.production(name)
        restored = registry.rollback(name, note="rolled back by hand")
    finally:
        registry.close()
    was = f" (was {current.version})" if current is not None else ""
    note(f"{name} rolled back to {restored.version}{was}")
