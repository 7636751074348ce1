"""``relayflow variants``: a workflow's A/B variants with their weights (and, from a store, how
each did on live traffic), which variant a key gets, and the rollout of a winner."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from relayflow.cli.common import load_workflow, open_store
from relayflow.cli.output import UserError, console, dumps, note, seconds, short
from relayflow.core.money import money

if TYPE_CHECKING:
    from relayflow.schema.file import VariantSpec
    from relayflow.schema.workflow import Workflow

app = typer.Typer(
    help="A/B variants of a workflow: list them, see which variant a key gets, roll out a winner.",
    no_args_is_help=True,
)

FileArgument = Annotated[Path, typer.Argument(help="The workflow file (YAML).", show_default=False)]


def _with_variants(file: Path) -> Workflow:
    workflow = load_workflow(file)
    if not workflow.spec.variants:
        raise UserError(
            f"{file}: workflow {workflow.name!r} has no variants: section — add one, e.g. "
            "`variants: [{name: control}, {name: b, agents: {Step: {setting: value}}}]`"
        )
    return workflow


def _overrides(variant: VariantSpec) -> str:
    if not variant.agents:
        return "(the workflow as written)"
    parts = [
        f"{agent}.{key}={dumps(value, indent=None)}"
        for agent, settings in variant.agents.items()
        for key, value in settings.items()
    ]
    return short(", ".join(parts), 80)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


@app.command("list")
def list_variants(
    file: FileArgument,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Also show each variant's live figures from the runs in this store "
            "(a path or database URL).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """The variants, their weights and shares of live traffic, and what each overrides."""
    from rich.table import Table

    from relayflow.spec.variants import weights

    workflow = _with_variants(file)
    variants = workflow.spec.variants
    table = Table(title=f"{workflow.name}: variants (the first is the baseline)")
    for column in ("variant", "weight", "share", "overrides"):
        table.add_column(column, justify="right" if column in ("weight", "share") else "left")
    live = None
    if store is not None:
        from relayflow.ab.live import live_figures

        reader = open_store(store)
        try:
            live = live_figures(reader, workflow)
        finally:
            reader.close()
        for column in ("runs", "ok / failed / parked", "TTR median", "TTR p95", "cost / run"):
            table.add_column(column, justify="right")
        table.add_column("accuracy [95 % CI]", justify="right")
    for index, (variant, share) in enumerate(zip(variants, weights(variants), strict=True)):
        weight = "—" if variant.weight is None else f"{variant.weight:g}"
        cells = [variant.name, weight, f"{share:.0%}", _overrides(variant)]
        if live is not None:
            f = live[index]
            accuracy = "—"
            if f.accuracy is not None:
                ci = f"[{_pct(f.accuracy_low)}–{_pct(f.accuracy_high)}]"
                accuracy = f"{_pct(f.accuracy)} {ci} n={f.scored}"
            cost = money(f.cost_per_run)
            cells += [
                str(f.runs),
                f"{f.succeeded} / {f.failed} / {f.waiting_review}",
                seconds(f.ttr_median),
                seconds(f.ttr_p95),
                cost,
                accuracy,
            ]
        table.add_row(*cells)
    console().print(table)
    if live is not None and not any(f.runs for f in live):
        note(f"no runs of {workflow.name}@… in the store yet: relayflow run {file}")


@app.command("assign")
def assign(
    file: FileArgument,
    keys: Annotated[
        list[str],
        typer.Argument(help="Input keys (the evaluate.key field, or id).", show_default=False),
    ],
) -> None:
    """Which variant each KEY is assigned to (sticky: always the same for the same key)."""
    from relayflow.ab.assign import assign_variant

    workflow = _with_variants(file)
    for key in keys:
        typer.echo(f"{key}\t{assign_variant(workflow, key)}")


@app.command("rollout")
def rollout(
    file: FileArgument,
    winner: Annotated[str, typer.Argument(help="The variant to roll out.", show_default=False)],
    step: Annotated[
        float | None,
        typer.Option(
            "--step",
            help="Raise the winner's share by this much (default 0.25); the others keep their "
            "ratios.",
            show_default=False,
        ),
    ] = None,
    to: Annotated[
        float | None,
        typer.Option(
            "--to", help="Set the winner's share to this (1.0: all traffic).", show_default=False
        ),
    ] = None,
) -> None:
    """Give WINNER more of the live traffic: rewrite the weights in FILE (only the weight
    values change; comments and layout stay)."""
    from relayflow.ab.rollout import rollout as roll

    if step is not None and to is not None:
        raise typer.BadParameter("give --step or --to, not both", param_hint="--step")
    _with_variants(file)
    done = roll(file, winner, step=step if step is not None or to is not None else 0.25, to=to)
    for name, before, after in zip(done.variants, done.before, done.after, strict=True):
        mark = "  ← winner" if name == winner else ""
        typer.echo(f"{name}: {before:.0%} → {after:.0%}{mark}")
    note(f"wrote {file}; runs started from now on are assigned by the new weights")
