"""``relayflow run`` and ``relayflow resume``: start or continue runs and batches, show their
progress, and close with a summary."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from relayflow.cli.common import (
    StoreOption,
    WorkflowOption,
    find_run,
    load_workflow,
    open_store,
    store_for_writing,
)
from relayflow.cli.output import (
    UserError,
    console,
    error_line,
    flat,
    note,
    parse_json_object,
    print_json,
    seconds,
)

if TYPE_CHECKING:
    from relayflow.cli.batch import BatchJob, Outcome
    from relayflow.engine.runner import RunResult
    from relayflow.schema.workflow import Workflow

LimitOption = Annotated[
    int | None,
    typer.Option("--limit", min=0, help="Run at most this many items.", show_default=False),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object per run on stdout (JSON Lines).")
]
MaxBadOption = Annotated[
    int | None,
    typer.Option(
        "--max-bad-records",
        min=0,
        help="Stop the batch (resumably) once more than this many records of its source could "
        "not be read; 0 stops at the first. Default: no limit (each is listed and skipped).",
        show_default=False,
    ),
]


def run(
    file: Annotated[Path, typer.Argument(help="The workflow file (YAML).", show_default=False)],
    input: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            help="One item as a JSON object: run it and print its output.",
            show_default=False,
        ),
    ] = None,
    inputs: Annotated[
        str | None,
        typer.Option(
            "--inputs",
            help="A JSONL, JSON, CSV or Parquet file of items, streamed as a batch.",
            show_default=False,
        ),
    ] = None,
    limit: LimitOption = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Runs at once.")
    ] = 4,
    store: StoreOption = None,
    batch_id: Annotated[
        str | None,
        typer.Option(
            "--batch-id", help="Name the batch (an existing id continues it).", show_default=False
        ),
    ] = None,
    as_json: JsonOption = False,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="Run only the items whose golden record is in this split (e.g. holdout): "
            "the evaluate.golden records carry `split`, joined on evaluate.key.",
            show_default=False,
        ),
    ] = None,
    max_bad_records: MaxBadOption = None,
    variant: Annotated[
        str | None,
        typer.Option(
            "--variant",
            help="Run this variant of the workflow's `variants:` (default: each item runs as "
            "the variant its key is assigned to).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a workflow on one item, a file of items, or its own source agent.

    With `variants:` in the YAML, each item runs as the variant its key is assigned to
    (sticky: the same key always gets the same variant), recorded as workflow NAME@VARIANT."""
    from relayflow.cli.batch import BatchJob, new_batch_id
    from relayflow.cli.inputs import count_items, inputs_location, split_keys
    from relayflow.spec.variants import variant_workflow

    if input is not None and inputs is not None:
        raise typer.BadParameter("give --input or --inputs, not both", param_hint="--input")
    single = parse_json_object(input, "--input") if input is not None else None
    workflow = load_workflow(file)
    if variant is None and single is not None and workflow.spec.variants:
        from relayflow.ab.assign import assign_variant, routing_key

        key = routing_key(single, workflow.spec.evaluate)
        variant = assign_variant(workflow, key)
        note(f"variant {variant} (assigned by key {key})")
    if variant is not None:
        workflow = variant_workflow(workflow, variant)
    location = inputs_location(inputs) if inputs is not None else None
    keys = split_keys(workflow, split) if split is not None and single is None else None
    evaluate = workflow.spec.evaluate
    job = BatchJob(
        workflow=workflow,
        store=store_for_writing(store),
        batch_id=batch_id or new_batch_id(),
        concurrency=concurrency,
        single=single,
        inputs=location,
        use_source=single is None and location is None,
        limit=limit,
        split_variants=variant is None and bool(workflow.spec.variants),
        max_bad_records=max_bad_records,
        keys=keys,
        key_field=evaluate.key if evaluate is not None else "id",
    )
    if single is not None:
        _finish_single(job, as_json)
    else:
        total = count_items(location, limit) if location is not None else limit
        if keys is not None:
            total = min(len(keys), limit) if limit is not None else len(keys)
        _finish_batch(job, as_json, total=total)


def resume(
    run_id: Annotated[
        str | None,
        typer.Argument(
            metavar="RUN_ID | FILE",
            help="The run (or a unique prefix of its id); with --batch, optionally the "
            "workflow file (default: the one the batch was started from).",
            show_default=False,
        ),
    ] = None,
    batch: Annotated[
        str | None,
        typer.Option("--batch", "-b", help="Resume a whole batch instead.", show_default=False),
    ] = None,
    workflow_file: WorkflowOption = None,
    limit: LimitOption = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            help="Runs at once (default: the batch's).",
            show_default=False,
        ),
    ] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
    max_bad_records: MaxBadOption = None,
) -> None:
    """Continue a run, or every unfinished and failed run of a batch.

    A run continues from its first unfinished step; finished steps are never run again.
    `relayflow resume RUN_ID` or `relayflow resume --batch BATCH_ID [FILE]`."""
    if batch is not None:
        if run_id is not None and workflow_file is not None:
            raise typer.BadParameter("give the workflow FILE or --workflow, not both")
        given = Path(run_id) if run_id is not None else workflow_file
        _resume_batch(batch, given, limit, concurrency, store, as_json, max_bad_records)
        return
    if run_id is None:
        raise typer.BadParameter("give a RUN_ID, or --batch BATCH_ID", param_hint="RUN_ID")
    from relayflow.cli.batch import BatchJob
    from relayflow.cli.common import workflow_of_run

    reader = open_store(store)
    try:
        record = find_run(reader, run_id)
        workflow = workflow_of_run(reader, record, workflow_file)
    finally:
        reader.close()
    job = BatchJob(workflow, store_for_writing(store), record.batch_id or "")
    _finish_single(job, as_json, only_run=record.run_id)


def _resume_batch(
    batch_id: str,
    workflow_file: Path | None,
    limit: int | None,
    concurrency: int | None,
    store: str | None,
    as_json: bool,
    max_bad_records: int | None,
) -> None:
    from relayflow.cli.batch import INLINE_INPUT, BatchJob, runs_to_resume

    reader = open_store(store)
    try:
        record = reader.get_batch(batch_id)
        if record is None:
            raise UserError(
                f"no batch {batch_id!r} in the store; the batch id is printed "
                "under the summary of `relayflow run`"
            )
        file = workflow_file or Path(record.workflow_file)
        if workflow_file is None and not file.exists():
            raise UserError(
                f"the workflow file of batch {batch_id} is gone ({file}): "
                "pass it with --workflow FILE"
            )
        workflow = _workflow_named(load_workflow(file), record.workflow)
        if workflow.name != record.workflow:
            raise UserError(
                f"batch {batch_id} ran workflow {record.workflow!r}, but {file} is workflow "
                f"{workflow.name!r}: give the file the batch was started from"
            )
        inputs = record.inputs if record.inputs != INLINE_INPUT else None
        if inputs is not None and "://" not in inputs and not Path(inputs).is_file():
            raise UserError(
                f"the inputs of batch {batch_id} are gone ({inputs}): put the "
                "file back to resume the batch"
            )
        # without an item source to read again, stopped runs are found through the store
        no_source = record.inputs == INLINE_INPUT
        resume_ids = runs_to_resume(reader, batch_id, unfinished=no_source)
    finally:
        reader.close()
    job = BatchJob(
        workflow=workflow,
        store=store_for_writing(store),
        batch_id=batch_id,
        concurrency=concurrency or record.concurrency,
        inputs=inputs,
        use_source=inputs is None and not no_source,
        limit=limit,
        resume=resume_ids,
        max_bad_records=max_bad_records,
    )
    _finish_batch(job, as_json, total=None)


def _workflow_named(workflow: Workflow, recorded: str) -> Workflow:
    """``workflow``, or its variant that ran as ``recorded`` (``name@variant``)."""
    from relayflow.spec.variants import workflow_for_run

    return workflow_for_run(workflow, recorded) or workflow


def _json_line(result: RunResult) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "item": result.item_key,
        "status": result.status,
        "output": result.output,
        "error": result.error,
        "step": result.step,
    }


def _finish_batch(job: BatchJob, as_json: bool, *, total: int | None) -> None:
    from relayflow.cli.batch import execute
    from relayflow.cli.progress import render_summary, resume_hint

    resolved: list[Mapping[str, Any]] = []

    def on_result(result: RunResult) -> None:
        if result.status == "succeeded" and result.output is not None:
            resolved.append(result.output)
        if as_json:
            print_json(_json_line(result), indent=None)

    outcome = execute(job, on_result, total=total)
    if not job.split_variants:
        render_summary(outcome.summary, console(stderr=as_json), limit=job.limit, store=job.store)
        _resolved_accuracy(job.workflow, resolved, outcome.summary.runs, as_json)
        _exit(outcome, resume_hint(job.batch_id, job.limit))
        return
    from relayflow.ab.route import arms

    # one batch per variant: the summary counts them all, the hints name each
    summary = dataclasses.replace(outcome.summary, batch_id=None)
    out = console(stderr=as_json)
    render_summary(summary, out, limit=job.limit, store=job.store)
    split = arms(job.workflow, job.batch_id, job.concurrency)
    for arm in split:
        hint = resume_hint(arm.batch_id, job.limit)
        out.print(f"variant {arm.variant} ({arm.share:.0%}): {hint}", markup=False, soft_wrap=True)
    _exit(dataclasses.replace(outcome, summary=summary), f"{resume_hint(split[0].batch_id)} …")


def _resolved_accuracy(
    workflow: Workflow, outputs: list[Mapping[str, Any]], runs: int, as_json: bool
) -> None:
    """What the agents resolved on their own and how often they were right, against the
    golden set (only with ``evaluate.golden``: a reference the item carries is not shown)."""
    evaluate = workflow.spec.evaluate
    if evaluate is None or evaluate.golden is None or not runs:
        return
    from relayflow.bench.reviewer import matches
    from relayflow.learn.references import References

    references = References(evaluate, workflow.base_dir)
    judged = [(o.get(evaluate.prediction), references.lookup(o)) for o in outputs]
    judged = [(p, r) for p, r in judged if r is not None]
    line = f"the agents resolved {len(outputs)} of {runs} runs ({len(outputs) / runs:.0%})"
    if judged:
        right = sum(matches(p, r) for p, r in judged)
        line += (
            f"; {evaluate.prediction} right on {right} of the {len(judged)} with a golden "
            f"answer ({right / len(judged):.1%})"
        )
    console(stderr=as_json).print(line, markup=False, soft_wrap=True)


def _finish_single(job: BatchJob, as_json: bool, *, only_run: str | None = None) -> None:
    from relayflow.cli.batch import execute

    results: list[RunResult] = []
    outcome = execute(job, results.append, total=1, only_run=only_run)
    hint = (
        f"relayflow resume {only_run}" if only_run else f"relayflow resume --batch {job.batch_id}"
    )
    for result in results:
        if as_json:
            print_json(_json_line(result), indent=None)
        elif result.status == "succeeded":
            print_json(result.output)
        ttr = seconds(outcome.summary.median_ttr)
        if result.status == "succeeded":
            note(f"run {result.run_id} succeeded in {ttr}")
        elif result.status == "waiting_review":
            note(
                f"run {result.run_id} waits for review at step {result.step}: {result.error}; "
                f"see relayflow review show {result.run_id}"
            )
        elif result.status == "failed":
            error_line(flat(f"run {result.run_id} failed: {result.error}"))
            note(f"fix the cause, then: relayflow resume {result.run_id}")
    _exit(outcome, hint)


def _exit(outcome: Outcome, hint: str) -> None:
    summary = outcome.summary
    if outcome.cancelled:
        note(f"cancelled: {summary.cancelled} runs in flight were stopped; resume with {hint}")
        raise typer.Exit(outcome.stop.exit_code)  # 130 after Ctrl-C, 143 after SIGTERM
    if outcome.error is not None:
        error_line(outcome.error)
        note(f"fix the cause, then resume with {hint}")
        raise typer.Exit(1)
    if summary.failed or summary.bad_records:  # some items did not come through
        raise typer.Exit(1)
