"""``relayflow bench``: run each workflow's items, measure TTR, CPW, accuracy and agent
utilization, print them beside the seed's figures, and write bench.json and report.html."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from relayflow.cli.common import run_async
from relayflow.cli.output import console, error_line, flat, note, plural, seconds
from relayflow.cli.progress import LiveBar
from relayflow.core import events as ev

if TYPE_CHECKING:
    from rich.console import Console

    from relayflow.bench.compare import Experiment
    from relayflow.bench.runner import BenchOptions, Items, WorkflowBench
    from relayflow.schema.workflow import Workflow

DEFAULT_OUT = Path(".relayflow") / "bench"
#: the store the bench writes when no --store is given: made afresh in the out folder each time
STORE_NAME = "bench-runs.db"


def bench(
    files: Annotated[
        list[Path], typer.Argument(help="Workflow files (YAML) to measure.", show_default=False)
    ],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Items per pass.")] = 50,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Passes over the same items.")] = 1,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Runs at once.")
    ] = 2,
    reviewer: Annotated[
        Literal["golden", "none"],
        typer.Option(
            "--reviewer",
            help="golden: decide each parked run at once from the reference; "
            "none: parked runs stay parked and do not complete.",
        ),
    ] = "golden",
    out: Annotated[
        Path, typer.Option("--out", help="Folder for bench.json and report.html.")
    ] = DEFAULT_OUT,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help=f"Run store (path or database URL). Default: a fresh {STORE_NAME} in --out.",
            show_default=False,
        ),
    ] = None,
    warmup: Annotated[
        int, typer.Option("--warmup", min=0, help="Runs before measuring, not counted.")
    ] = 2,
    cache: Annotated[
        bool,
        typer.Option(
            "--cache/--no-cache",
            help="Reuse cached step results (off: every pass runs every step).",
        ),
    ] = False,
    inputs: Annotated[
        str | None,
        typer.Option(
            "--inputs",
            help="Items from this JSONL/JSON/CSV/Parquet file instead of the workflow's source.",
            show_default=False,
        ),
    ] = None,
    variants: Annotated[
        bool,
        typer.Option(
            "--variants/--no-variants",
            help="With `variants:` in a workflow, run every variant on the same items and "
            "compare each with the first (off: the workflow as written only).",
        ),
    ] = True,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="Only the items whose golden record is in this split (e.g. holdout), joined "
            "on evaluate.key.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Measure workflows: TTR (median, p95), cost per workflow, accuracy, agent utilization.

    Prints a table beside the seed's figures and writes OUT/bench.json and OUT/report.html."""
    from relayflow.bench.report import (
        render_experiments,
        render_table,
        to_json,
        write_html,
        write_json,
    )
    from relayflow.bench.runner import BenchOptions
    from relayflow.bench.tier_report import render_tiers

    workflows = _load_all(files)
    if inputs is not None and len(workflows) > 1:
        raise typer.BadParameter("give --inputs with one workflow file", param_hint="--inputs")
    items, inputs_name = _items(inputs)
    out.mkdir(parents=True, exist_ok=True)
    location = _store(store, out)
    options = BenchOptions(limit, runs, concurrency, reviewer, warmup, cache)
    started = time.perf_counter()
    benches: list[WorkflowBench] = []
    experiments: list[Experiment] = []
    broken = 0
    for workflow in workflows:
        if split is not None:
            from relayflow.cli.inputs import split_keys

            options = dataclasses.replace(options, keys=split_keys(workflow, split))
        if variants and workflow.spec.variants:
            arms, failed = _measure_variants(workflow, location, options, items, inputs_name)
            broken += failed
            benches.extend(bench for _name, _share, bench in arms)
            if len(arms) > 1:
                experiments.append(_compare(workflow, arms))
            continue
        result = _measure(workflow, location, options, items, inputs_name)
        if result is None:
            broken += 1
        else:
            benches.append(result)
    wall = time.perf_counter() - started
    if benches:
        meta = _meta(options, location, wall)
        render_table(benches, console())
        render_tiers(benches, console())
        render_experiments(experiments, console())
        write_json(out / "bench.json", to_json(benches, meta, experiments))
        write_html(out / "report.html", benches, meta, experiments)
        measured = f"{plural(len(benches), 'workflow')} measured in {seconds(wall)}"
        note(f"{measured}; wrote {out / 'bench.json'} and {out / 'report.html'}")
    if broken:
        raise typer.Exit(1)


def _load_all(files: list[Path]) -> list[Workflow]:
    """Every workflow, or each problem of every bad file (as `relayflow validate` prints them)
    and exit status 1 before anything runs."""
    from relayflow.cli.common import load_workflow
    from relayflow.errors import SpecError

    loaded: list[Workflow] = []
    bad = False
    for file in files:
        try:
            loaded.append(load_workflow(file))
        except SpecError as exc:
            bad = True
            for problem in exc.problems:
                typer.echo(str(problem), err=True)
    if bad:
        raise typer.Exit(1)
    return loaded


def _items(inputs: str | None) -> tuple[Items | None, str | None]:
    if inputs is None:
        return None, None
    from relayflow.cli.inputs import file_items, inputs_location

    location = inputs_location(inputs)
    return (lambda limit: file_items(location, limit)), location


def _store(store: str | None, out: Path) -> str:
    """The store URL: the one given, or a fresh SQLite file in ``out`` (the previous bench's,
    with its WAL files and write-ahead logs, removed first)."""
    if store is not None:
        if "://" not in store:
            Path(store).expanduser().parent.mkdir(parents=True, exist_ok=True)
            return str(Path(store).expanduser())
        return store
    for old in out.glob(f"{STORE_NAME}*"):
        old.unlink(missing_ok=True)
    return str((out / STORE_NAME).resolve())


def _measure(
    workflow: Workflow,
    store: str,
    options: BenchOptions,
    items: Items | None,
    inputs_name: str | None,
) -> WorkflowBench | None:
    """One workflow's bench under ``asyncio.run``, with progress; None when it cannot run."""
    from relayflow.bench.runner import bench_workflow
    from relayflow.errors import RelayflowError

    progress = BenchProgress(workflow.name, options, console(stderr=True))
    try:
        with progress:
            return run_async(
                bench_workflow(
                    workflow,
                    store=store,
                    options=options,
                    items=items,
                    inputs_name=inputs_name,
                    consumers=[progress],
                    on_phase=progress.phase,
                )
            )
    except RelayflowError as exc:
        error_line(flat(f"{workflow.file}: {exc}") + " (skipped)")
        return None


def _measure_variants(
    workflow: Workflow,
    store: str,
    options: BenchOptions,
    items: Items | None,
    inputs_name: str | None,
) -> tuple[list[tuple[str, float, WorkflowBench]], int]:
    """Each variant's bench on the same items (the first ``limit`` of the shared source),
    with its share of live traffic; and how many variants could not run."""
    import dataclasses

    from relayflow.spec.variants import variant_workflow, weights

    arms: list[tuple[str, float, WorkflowBench]] = []
    failed = 0
    shares = weights(workflow.spec.variants)
    for variant, share in zip(workflow.spec.variants, shares, strict=True):
        derived = variant_workflow(workflow, variant.name)
        result = _measure(derived, store, options, items, inputs_name)
        if result is None:
            failed += 1
        else:
            arms.append((variant.name, share, dataclasses.replace(result, variant=variant.name)))
    return arms, failed


def _compare(workflow: Workflow, arms: list[tuple[str, float, WorkflowBench]]) -> Experiment:
    from relayflow.bench.compare import compare
    from relayflow.learn.references import References

    references = References(workflow.spec.evaluate, workflow.base_dir)
    return compare(workflow.name, str(workflow.file), arms, workflow.spec.evaluate, references)


def _meta(options: BenchOptions, store: str, wall: float) -> dict[str, Any]:
    import dataclasses
    import os
    import platform
    from datetime import UTC, datetime

    from relayflow.bench.report import NO_REVIEWER_NOTE, REVIEWER_NOTE
    from relayflow.version import __version__

    golden = options.reviewer == "golden"
    return {
        "relayflow": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.system()} {platform.machine()}, {plural(os.cpu_count() or 1, 'CPU')}"
        f", Python {platform.python_version()}",
        "options": dataclasses.asdict(options),
        "reviewer": options.reviewer,
        "reviewer_note": REVIEWER_NOTE if golden else NO_REVIEWER_NOTE,
        "store": store,
        "wall_seconds": wall,
    }


class BenchProgress(LiveBar):
    """An event consumer that shows the phase in progress (warm-up, pass k of K) with Rich:
    runs done, and how many completed, failed and parked."""

    def __init__(self, workflow: str, options: BenchOptions, console: Console) -> None:
        self.workflow = workflow
        self.options = options
        self._console = console
        self._status: dict[str, str] = {}

    def phase(self, kind: str, index: int | None) -> None:
        self._status.clear()
        if kind == "warmup":
            label, total = "warm-up", self.options.warmup
        else:
            label, total = f"pass {index}/{self.options.passes}", self.options.limit
        if self._progress is not None and self._task is not None:
            description = f"{self.workflow} {label}"
            self._progress.reset(self._task, total=total, description=description)
            self._refresh()

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            self._status[event.run_id] = "running"
        elif isinstance(event, ev.RunFinished) and event.run_id in self._status:
            self._status[event.run_id] = event.status
        elif isinstance(event, ev.StepEscalated) and event.run_id in self._status:
            self._status[event.run_id] = "waiting_review"
        else:
            return
        self._refresh()

    def stats_text(self) -> str:
        values = list(self._status.values())
        ok, failed = values.count("succeeded"), values.count("failed")
        return f"ok {ok}  failed {failed}  parked {values.count('waiting_review')}"

    def _refresh(self) -> None:
        done = sum(status != "running" for status in self._status.values())
        self._show(done, self.stats_text())

    def __enter__(self) -> BenchProgress:
        self._start(self.workflow, None, self.stats_text(), spinner=False)
        return self
