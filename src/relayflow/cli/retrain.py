"""``relayflow retrain FILE``: run a workflow's retraining job now, on the labelled runs in the
store, and print what the golden set decided."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from relayflow.cli.common import StoreOption, load_workflow, run_async, store_for_writing
from relayflow.cli.models import existing_store
from relayflow.cli.output import UserError, console, note, print_json

if TYPE_CHECKING:
    from relayflow.learn.retrain import RetrainOutcome, RetrainRequest
    from relayflow.learn.retrain_agent import RetrainConfig
    from relayflow.schema.workflow import Workflow


def retrain(
    file: Annotated[Path, typer.Argument(help="The workflow file (YAML).", show_default=False)],
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            "-t",
            help="The inference step (or scikit-learn model alias) to retrain. Default: the "
            "retrain step's target, else the workflow's only inference step.",
            show_default=False,
        ),
    ] = None,
    store: StoreOption = None,
    history: Annotated[
        Path | None,
        typer.Option(
            "--history",
            help="A labelled file (JSONL, JSON, CSV or Parquet: the items and their labels) to "
            "learn from besides the store's reviews and labels; a learned model's target only. "
            "Records shaped like the workflow's source are first carried through the steps "
            "before the target. Default: the retrain step's history.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Retrain now: train (or re-prompt) a candidate on the labelled runs, score it and
    production on the golden set, and promote it only if it is strictly better."""
    from relayflow.learn.retrain import RetrainRequest

    workflow = load_workflow(file)
    step = _retrain_step(workflow)
    learns_from_file = history is not None or (step is not None and step.history is not None)
    # its runs are the training data; with a history file the registry may start in a new one
    location = store_for_writing(store) if learns_from_file else existing_store(store)
    if history is not None and not history.is_file():
        raise UserError(f"history file not found: {history} — check the path given to --history")
    if history is None and step is not None and step.history is not None:
        history = workflow.base_dir / step.history
    request = RetrainRequest(
        workflow,
        location,
        target=target or (step.target if step is not None else None),
        trigger="manual",
        metric=step.metric if step is not None else None,
        history=history.resolve() if history is not None else None,
    )
    outcome = run_async(_run(request))  # SIGTERM stops it as Ctrl-C does
    if as_json:
        print_json(
            {
                "name": outcome.name,
                "kind": outcome.kind,
                "decision": outcome.decision,
                "candidate": outcome.candidate,
                "parent": outcome.parent,
                "production": outcome.production,
                "golden": outcome.scores.as_dict(),
                "train_rows": outcome.train_rows,
                "note": outcome.note,
            }
        )
        return
    _print(outcome)


def _retrain_step(workflow: Workflow) -> RetrainConfig | None:
    from relayflow.learn.retrain_agent import RetrainConfig

    steps = [a for a in workflow.agents if isinstance(a, RetrainConfig)]
    return steps[0] if len(steps) == 1 else None


async def _run(request: RetrainRequest) -> RetrainOutcome:
    from relayflow.learn.retrain import run_retrain
    from relayflow.providers.registry import close_all

    try:
        return await run_retrain(request)
    finally:
        await close_all()


def _print(outcome: RetrainOutcome) -> None:
    from rich.table import Table
    from rich.text import Text

    s = outcome.scores
    table = Table(title=f"retrain {outcome.name} ({outcome.kind})", show_header=False)
    table.add_column("what")
    table.add_column("value")
    rows = [
        ("decision", outcome.decision),
        ("candidate", outcome.candidate),
        ("compared with", outcome.parent),
        ("in production", outcome.production),
        (f"golden {s.metric}", f"{s.candidate:.4f} candidate vs {s.parent:.4f} production"),
        ("golden set", f"{s.n} rows, {s.source}"),
        ("examples" if outcome.kind == "prompt" else "trained on", str(outcome.train_rows)),
    ]
    for what, value in rows:
        table.add_row(Text(what), Text(value))
    console().print(table)
    if outcome.decision == "promoted" and outcome.kind == "prompt":
        note(outcome.note.rpartition("; ")[2])  # how to run it: pin the label
    if outcome.decision == "rejected":
        note(f"kept {outcome.production} in production: the candidate was not better")
