"""``relayflow optimize``: search a workflow's settings (prompt variants, models, thresholds,
compression, max_tokens) for the best trade-offs, confirm the chosen one on the holdout split,
and write it as an overlay file, with optimize.json and report.html."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from relayflow.cli.common import load_workflow, run_async
from relayflow.cli.output import console, note, seconds
from relayflow.core import events as ev
from relayflow.core.money import money

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from relayflow.core.events import Consumer
    from relayflow.optimize.points import Point
    from relayflow.optimize.search import Estimate, Outcome

DEFAULT_OUT = Path(".relayflow") / "optimize"
STORE_NAME = "runs.db"
OVERLAY_NAME = "optimized.yaml"


def optimize(
    file: Annotated[Path, typer.Argument(help="The workflow file (YAML).", show_default=False)],
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            min=1,
            help="Settings to try, the baseline included (default: optimize.trials, 20).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=1,
            help="Dev items per setting, and holdout items (default: optimize.limit, 50).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="The sampler's seed: the same seed and cache give the "
            "same front (default: optimize.seed, 0).",
            show_default=False,
        ),
    ] = None,
    max_calls: Annotated[
        int | None,
        typer.Option(
            "--max-calls",
            min=1,
            help="Stop before more fresh model calls than this.",
            show_default=False,
        ),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost",
            min=0,
            help="Stop before spending more than this (the prices' unit).",
            show_default=False,
        ),
    ] = None,
    max_time: Annotated[
        float | None,
        typer.Option(
            "--max-time", min=0, help="Stop before this many wall seconds.", show_default=False
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Runs at once.")
    ] = 1,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help=f"Folder for the results (default: {DEFAULT_OUT}/NAME). "
            "Its store and step ledger make a repeated search free.",
            show_default=False,
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help=f"Run store with the step cache (default: {STORE_NAME} "
            "in --out, kept between searches).",
            show_default=False,
        ),
    ] = None,
    rollout: Annotated[
        float,
        typer.Option(
            "--rollout",
            min=0.0,
            max=1.0,
            help="The optimized variant's share of "
            "live traffic in the overlay (1.0: all of it; 0.1 to start a gradual "
            "rollout with `relayflow variants rollout`).",
        ),
    ] = 1.0,
) -> None:
    """Search a workflow's settings for the best trade-offs of its evaluate metric, cost per
    workflow, TTR and agent utilization, measured on the golden dev split.

    Prints the estimate before it starts and the Pareto front (95 % intervals) at the end;
    the chosen point is re-measured on the holdout split and written as OUT/optimized.yaml
    (an overlay that `relayflow run` takes as is), with OUT/optimize.json and OUT/report.html."""
    from relayflow.optimize.overlay import write_overlay
    from relayflow.optimize.report import to_json, write_html, write_json
    from relayflow.optimize.search import check_ready, settings_of
    from relayflow.optimize.search import optimize as search

    workflow = load_workflow(file)
    check_ready(workflow)
    settings = settings_of(
        workflow,
        trials=trials,
        limit=limit,
        seed=seed,
        max_calls=max_calls,
        max_cost=max_cost,
        max_time=max_time,
        concurrency=concurrency,
    )
    folder = out if out is not None else DEFAULT_OUT / workflow.name
    folder.mkdir(parents=True, exist_ok=True)
    location = store if store is not None else str((folder / STORE_NAME).resolve())
    watcher = OptimizeProgress(workflow.name, settings.trials, console(stderr=True))
    with watcher:
        outcome = run_async(
            search(workflow, out=folder, store=location, settings=settings, watcher=watcher)
        )
    render(outcome, console())
    overlay: Path | None = None
    if outcome.chosen is not None:
        overlay = folder / OVERLAY_NAME
        write_overlay(workflow, outcome, outcome.chosen, overlay, rollout)
    write_json(
        folder / "optimize.json", to_json(outcome, {"overlay": str(overlay) if overlay else None})
    )
    write_html(folder / "report.html", outcome, overlay)
    wrote = [str(folder / "optimize.json"), str(folder / "report.html")]
    if overlay is not None:
        wrote.insert(0, str(overlay))
        if outcome.holdout is not None and outcome.holdout.recommended:
            note(f"run the chosen settings: relayflow run {overlay}")
    note("wrote " + ", ".join(wrote))


def estimate_text(estimate: Estimate, baseline: Point, trials: int) -> str:
    return (
        f"baseline measured in {seconds(baseline.wall_seconds)} ({baseline.fresh_calls} model "
        f"calls); estimate for the other {estimate.trials} of {trials} settings and the holdout: "
        f"about {estimate.calls} model calls, {money(estimate.cost)}, {seconds(estimate.seconds)}"
        f" (a trial re-runs only the steps its knobs reach: about {estimate.trial_calls:.0f} calls"
        f" and {seconds(estimate.trial_seconds)} each)"
    )


def render(outcome: Outcome, out: Console) -> None:
    """The front, the verdict and the holdout confirmation, as Rich tables."""
    from rich.table import Table

    from relayflow.optimize.report import ALL, LABELS, gain_text, point_rows

    table = Table(
        title=f"{outcome.workflow}: Pareto front on {outcome.dev_items} dev items "
        "(95 % bootstrap intervals)"
    )
    for column in ("trial", "settings", *[LABELS[o] for o in ALL]):
        table.add_column(column, overflow="fold")
    for row in point_rows(outcome, outcome.front):
        table.add_row(*row)
    out.print(table)
    if outcome.stopped:
        out.print(f"stopped early: {outcome.stopped}", markup=False)
    out.print(outcome.verdict, markup=False)
    holdout = outcome.holdout
    if holdout is not None:
        confirm = Table(
            title=f"holdout ({outcome.holdout_items} items): trial "
            f"{holdout.chosen.number} minus the baseline"
        )
        for column in ("objective", "n", "gain [95 % CI]"):
            confirm.add_column(column)
        for gain in holdout.gains:
            confirm.add_row(
                LABELS.get(gain.objective, gain.objective), str(gain.n), gain_text(gain)
            )
        out.print(confirm)
        word = "recommended" if holdout.recommended else "not recommended"
        out.print(f"{word}: {holdout.reason}", markup=False)
    for line in outcome.notes:
        out.print(f"note: {line}", markup=False)


class OptimizeProgress:
    """Rich progress of the search: settings tried of all, and the runs of the one in
    progress; an event consumer for the runs."""

    def __init__(self, workflow: str, trials: int, console: Console) -> None:
        self.workflow, self.trials, self._console = workflow, trials, console
        self._progress: Progress | None = None
        self._trials: TaskID | None = None
        self._items: TaskID | None = None
        self._done: set[str] = set()

    @property
    def consumers(self) -> list[Consumer]:
        return [self]

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunFinished) and event.status != "waiting_review":
            self._done.add(event.run_id)
            if self._progress is not None and self._items is not None:
                self._progress.update(self._items, completed=len(self._done))

    def phase(self, label: str, items: int) -> None:
        self._done.clear()
        if self._progress is not None and self._items is not None:
            self._progress.reset(self._items, total=items, description=f"  {label}")

    def estimated(self, estimate: Estimate, baseline: Point) -> None:
        text = estimate_text(estimate, baseline, self.trials)
        if self._progress is not None:
            self._progress.console.print(f"estimate: {text}", markup=False)
        else:
            note(f"estimate: {text}")

    def trial_done(self, point: Point, done: int, total: int) -> None:
        if self._progress is not None and self._trials is not None:
            self._progress.update(self._trials, completed=done, total=total)

    def __enter__(self) -> OptimizeProgress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self._console,
            transient=True,
            disable=not self._console.is_terminal,
        )
        self._trials = self._progress.add_task(f"{self.workflow} settings", total=self.trials)
        self._items = self._progress.add_task("  baseline", total=None)
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._progress = None
