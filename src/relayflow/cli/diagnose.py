"""``relayflow diagnose FILE``: each step's share of TTR, cost, failures, escalations and wrong
answers over the last bench or a batch, the bottleneck, and what the optimizer would try."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from relayflow.cli.common import StoreOption

DEFAULT_BENCH = Path(".relayflow") / "bench"


def diagnose(
    file: Annotated[Path, typer.Argument(help="The workflow file (YAML).", show_default=False)],
    store: StoreOption = None,
    batch: Annotated[
        str | None,
        typer.Option("--batch", help="Diagnose this batch's runs.", show_default=False),
    ] = None,
    runs: Annotated[
        int | None,
        typer.Option(
            "--runs", min=1, help="Diagnose the latest N runs of the workflow.", show_default=False
        ),
    ] = None,
    bench_dir: Annotated[
        Path,
        typer.Option("--bench", help="Folder of the last bench's bench.json (bench --out)."),
    ] = DEFAULT_BENCH,
    variant: Annotated[
        str | None,
        typer.Option(
            "--variant", help="Diagnose the runs of this variant of variants:.", show_default=False
        ),
    ] = None,
    objective: Annotated[
        Literal["failures", "wrong", "escalations", "ttr", "cost"] | None,
        typer.Option(
            "--objective",
            help="Name the bottleneck for this objective instead of by the rule "
            "(failures, then wrong answers, escalations, TTR, cost).",
            show_default=False,
        ),
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Also write the diagnosis as JSON here.", show_default=False),
    ] = None,
    html_path: Annotated[
        Path | None,
        typer.Option(
            "--html", help="Also write a self-contained HTML report here.", show_default=False
        ),
    ] = None,
) -> None:
    """Find the bottleneck step of a workflow from its recorded runs.

    Reads the newer of the last `relayflow bench` (its measured passes) and the latest batch
    of the workflow in the store, or --batch ID, or the latest --runs N. For each step: its
    share of TTR (and its median seconds), cost, failed attempts, escalations and wrong answers
    against the golden set; then the bottleneck and the knobs `relayflow optimize` would turn."""
    from relayflow.cli.common import load_workflow, store_location
    from relayflow.cli.output import console, note
    from relayflow.diagnose.diagnosis import diagnose as run_diagnosis
    from relayflow.diagnose.report import render_table, write_html, write_json
    from relayflow.diagnose.source import choose, no_runs, runs_of
    from relayflow.spec.variants import variant_workflow
    from relayflow.store.sql_store import SqlStore

    workflow = load_workflow(file)
    if variant is not None:
        workflow = variant_workflow(workflow, variant)
    default = store_location(None)
    chosen = choose(
        workflow.name,
        str(file),
        store_given=store,
        default_store=default,
        bench_json=bench_dir / "bench.json",
        batch=batch,
        last=runs,
    )
    reader = SqlStore(chosen.store)
    try:
        records = runs_of(reader, workflow.name, batch_ids=chosen.batch_ids, last=runs)
        if not records:
            raise no_runs(workflow.name, str(file), f"in {chosen.label} ({chosen.store})")
        result = run_diagnosis(
            workflow,
            reader,
            records,
            source=chosen.label,
            location=chosen.store,
            objective=objective,
        )
    finally:
        reader.close()
    render_table(result, console())
    for path, write in ((json_path, write_json), (html_path, write_html)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path, result)
            note(f"wrote {path}")
