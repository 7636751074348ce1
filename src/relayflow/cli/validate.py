"""``relayflow validate``: check workflow files and print every problem with its file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def validate(
    files: Annotated[
        list[Path], typer.Argument(help="Workflow files (YAML) to check.", show_default=False)
    ],
) -> None:
    """Check workflow files and print every problem with its file and line.

    Prints `ok: FILE (N agents)` for each good file and each problem of a bad one on its own
    line (stderr); the exit status is 1 when any file is bad. What a good file still needs
    before it runs (a model file to train) is a `warning:` line on stderr."""
    from relayflow.errors import SpecError
    from relayflow.spec.loader import load_spec

    bad = 0
    for file in files:
        try:
            workflow = load_spec(file)
        except SpecError as exc:
            bad += 1
            for problem in exc.problems:
                typer.echo(str(problem), err=True)
            continue
        count = len(workflow.agents)
        typer.echo(f"ok: {file} ({count} agent{'s' if count != 1 else ''})")
        for note in workflow.notes:
            typer.echo(f"warning: {note}", err=True)
    if bad:
        raise typer.Exit(1)
