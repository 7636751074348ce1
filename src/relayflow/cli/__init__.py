"""relayflow's command line (Typer + Rich). Commands import the engine only when they run."""

from __future__ import annotations

from typing import Annotated

import typer

from relayflow.cli import (
    batches,
    bench,
    feedback,
    models,
    prompts,
    review,
    runs,
    tokens,
    variants,
)
from relayflow.cli.costs import costs
from relayflow.cli.diagnose import diagnose
from relayflow.cli.optimize import optimize
from relayflow.cli.output import GuardedGroup
from relayflow.cli.retrain import retrain
from relayflow.cli.run import resume, run
from relayflow.cli.serve import serve
from relayflow.cli.serve_agent import serve_agent
from relayflow.cli.validate import validate

__all__ = ["app", "main"]

app = typer.Typer(
    name="relayflow",
    cls=GuardedGroup,
    help="Run AI workflows declared in YAML, measure every run, review what the machine "
    "is unsure of.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from relayflow.version import __version__

        typer.echo(f"relayflow {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Run AI workflows declared in YAML, measure every run, review what the machine is
    unsure of."""


app.command("validate")(validate)
app.command("run")(run)
app.command("resume")(resume)
app.command("bench")(bench.bench)
app.command("optimize")(optimize)
app.command("costs")(costs)
app.command("diagnose")(diagnose)
app.add_typer(runs.app, name="runs")
app.add_typer(batches.app, name="batches")
app.add_typer(review.app, name="review")
app.add_typer(feedback.app, name="feedback")
app.command("retrain")(retrain)
app.add_typer(models.app, name="models")
app.add_typer(prompts.app, name="prompts")
app.add_typer(variants.app, name="variants")
app.command("serve")(serve)
app.command("serve-agent")(serve_agent)
app.add_typer(tokens.app, name="tokens")


def main() -> None:
    """The ``relayflow`` console script."""
    app(prog_name="relayflow")
