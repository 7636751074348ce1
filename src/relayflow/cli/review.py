"""``relayflow review``: the queue of escalated steps; approve or correct one and the run
resumes at once."""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from relayflow.cli.common import (
    StoreOption,
    WorkflowOption,
    find_run,
    open_store,
    run_async,
    store_for_writing,
    workflow_of_run,
)
from relayflow.cli.output import (
    UserError,
    console,
    dumps,
    error_line,
    flat,
    local_time,
    note,
    parse_json,
    parse_json_object,
    print_json,
    short,
)

if TYPE_CHECKING:
    from relayflow.engine.runner import RunResult
    from relayflow.schema.workflow import Workflow
    from relayflow.store.protocol import RunStore
    from relayflow.store.records import ReviewRecord

app = typer.Typer(
    help="Review escalated steps: list, show, approve, correct.", no_args_is_help=True
)

ReviewId = Annotated[
    str,
    typer.Argument(
        help="A review id (RUN:STEP) or a run id (or a unique prefix of it).", show_default=False
    ),
]
ReviewerOption = Annotated[
    str | None,
    typer.Option(
        "--reviewer", "-r", help="Who decided (default: your user name).", show_default=False
    ),
]


@app.command("list")
def list_reviews(
    status: Annotated[
        str, typer.Option("--status", "-s", help="pending, approved, corrected, or all.")
    ] = "pending",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 100,
    store: StoreOption = None,
) -> None:
    """Escalated steps, oldest first."""
    from rich.table import Table

    reader = open_store(store)
    try:
        records = reader.reviews(status=None if status == "all" else status, limit=limit)
    finally:
        reader.close()
    out = console()
    if not records:
        out.print(
            "no reviews " + ("pending" if status == "pending" else f"with status {status}"),
            markup=False,
        )
        return
    table = Table()
    for name in ("review", "workflow", "status", "reason", "confidence", "created"):
        table.add_column(name, no_wrap=name in ("review", "status", "created"))
    for r in records:
        table.add_row(
            r.review_id,
            r.workflow,
            r.status,
            short(r.reason, 50),
            f"{r.confidence:.2f}" if r.confidence is not None else "-",
            local_time(r.created),
        )
    out.print(table)


@app.command("show")
def show(review_id: ReviewId, store: StoreOption = None) -> None:
    """One escalated step: why, how confident, its input and output, the instructions."""
    reader = open_store(store)
    try:
        review = find_review(reader, review_id)
        instructions, fields = _guidance(reader, review)
    finally:
        reader.close()
    out = console()
    lines = [
        f"review {review.review_id}  {review.status}",
        f"workflow {review.workflow}  run {review.run_id}  step {review.step}",
        f"reason: {review.reason}",
        "confidence: " + (f"{review.confidence:.2f}" if review.confidence is not None else "-"),
    ]
    if instructions:
        lines.append(f"instructions: {instructions}")
    for field in fields:
        lines.append(f"check {field}: {dumps(review.output.get(field), indent=None)}")
    lines += ["input:", dumps(review.input), "output:", dumps(review.output)]
    if review.decision:
        lines.append(
            f"decided: {review.decision} by {review.reviewer} at {local_time(review.decided)}"
        )
        lines += ["decided output:", dumps(review.decided_output)]
    for line in lines:
        out.print(line, markup=False, soft_wrap=True)


@app.command("approve")
def approve(
    review_id: ReviewId,
    reviewer: ReviewerOption = None,
    workflow_file: WorkflowOption = None,
    store: StoreOption = None,
) -> None:
    """Accept the step's output as it is; the run resumes at once."""
    _decide(review_id, "approve", None, reviewer, workflow_file, store)


@app.command("correct")
def correct(
    review_id: ReviewId,
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="The whole corrected output as JSON.", show_default=False
        ),
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Change one field: key=value (value as JSON, else text; "
            "a.b=… for nested). Repeat for more.",
            show_default=False,
        ),
    ] = None,
    reviewer: ReviewerOption = None,
    workflow_file: WorkflowOption = None,
    store: StoreOption = None,
) -> None:
    """Correct the step's output; the run resumes with it.

    --output replaces the whole output; each --set changes one field of it (or of the
    escalated output when --output is not given)."""
    if output is None and not sets:
        raise typer.BadParameter(
            "give --output JSON or at least one --set key=value", param_hint="--output"
        )
    base = parse_json_object(output, "--output") if output is not None else None
    _decide(review_id, "correct", (base, list(sets or [])), reviewer, workflow_file, store)


def find_review(store: RunStore, review_id: str) -> ReviewRecord:
    """The review with this id, or the pending review of the run with this id (or prefix)."""
    review = store.get_review(review_id)
    if review is not None:
        return review
    if ":" in review_id:
        raise UserError(f"no review {review_id!r}; see `relayflow review list`")
    run = find_run(store, review_id)
    if run.waiting_step is None:
        raise UserError(
            f"run {run.run_id} is {run.status}, not waiting for review; see `relayflow review list`"
        )
    review = store.get_review(f"{run.run_id}:{run.waiting_step}")
    if review is None:
        raise UserError(f"run {run.run_id} has no review record for step {run.waiting_step}")
    return review


def apply_sets(output: Mapping[str, Any], sets: list[str]) -> dict[str, Any]:
    """``output`` with each ``key=value`` applied; ``a.b=…`` sets a nested field."""
    result: dict[str, Any] = dict(output)
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item!r} is not key=value — e.g. --set label=refund")
        try:
            value = parse_json(raw, "value")
        except UserError:
            value = raw
        if key in result or "." not in key:
            result[key] = value
            continue
        target = result
        *parents, leaf = key.split(".")
        for part in parents:
            child = target.get(part)
            child = dict(child) if isinstance(child, Mapping) else {}
            target[part] = child
            target = child
        target[leaf] = value
    return result


def _decide(
    review_id: str,
    decision: Literal["approve", "correct"],
    correction: tuple[dict[str, Any] | None, list[str]] | None,
    reviewer: str | None,
    workflow_file: Path | None,
    store: str | None,
) -> None:
    reader = open_store(store)
    try:
        review = find_review(reader, review_id)
        if review.status != "pending":
            raise UserError(
                f"review {review.review_id} is already {review.status} (by {review.reviewer})"
            )
        run = find_run(reader, review.run_id)
        workflow = workflow_of_run(reader, run, workflow_file)
    finally:
        reader.close()
    decided: dict[str, Any] | None = None
    if correction is not None:
        base, sets = correction
        decided = apply_sets(base if base is not None else review.output, sets)
    who = reviewer or _user()
    result = run_async(_resume(workflow, store_for_writing(store), review, decision, decided, who))
    done = "approved" if decision == "approve" else "corrected"
    note(f"review {review.review_id}: {done} by {who}")
    if result.status == "succeeded":
        note(f"run {result.run_id} succeeded")
        print_json(result.output)
    elif result.status == "waiting_review":
        note(
            f"run {result.run_id} waits for review again at step {result.step}: "
            f"{result.error}; see relayflow review show {result.run_id}"
        )
    else:
        error_line(flat(f"run {result.run_id} {result.status}: {result.error}"))
        raise typer.Exit(1)


async def _resume(
    workflow: Workflow,
    store: str,
    review: ReviewRecord,
    decision: Literal["approve", "correct"],
    output: dict[str, Any] | None,
    reviewer: str,
) -> RunResult:
    from relayflow.engine.factory import build_runner

    async with build_runner(workflow, store=store) as runner:
        return await runner.decide(review.run_id, review.step, decision, output, reviewer)


def _guidance(store: RunStore, review: ReviewRecord) -> tuple[str | None, list[str]]:
    """The step's ``instructions`` and ``show`` fields from its workflow file, when found."""
    from relayflow.errors import RelayflowError

    try:
        run = find_run(store, review.run_id)
        workflow = workflow_of_run(store, run, None)
    except (UserError, RelayflowError):
        return None, []
    for agent in workflow.agents:
        if agent.name == review.step:
            instructions = getattr(agent, "instructions", None)
            show = getattr(agent, "show", None) or []
            return instructions, [str(f) for f in show]
    return None, []


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "reviewer"
