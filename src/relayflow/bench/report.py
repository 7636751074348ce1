"""The bench's outputs: a Rich table beside the seed's figures, ``bench.json`` with everything,
and a self-contained ``report.html`` whose plots are PNGs embedded as data URIs."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relayflow.bench.formats import accuracy_text, pct, secs
from relayflow.bench.formats import html_table as _table
from relayflow.bench.formats import png_uri as _png
from relayflow.core.money import money

if TYPE_CHECKING:
    from rich.console import Console

    from relayflow.bench.compare import Experiment
    from relayflow.bench.runner import WorkflowBench
    from relayflow.eval.stats import Diff


@dataclass(frozen=True, slots=True)
class SeedFigures:
    """One row of the seed's benchmark table (DESIGN.md)."""

    title: str
    ttr: float
    cpw: float
    accuracy: float
    utilization: float


#: the seed's table, by the name of the example workflow of the same kind
SEED: Mapping[str, SeedFigures] = {
    "customer_support": SeedFigures("Customer Support Automation", 2.3, 0.014, 0.894, 0.982),
    "document_summarization": SeedFigures(
        "Document Parsing & Summarization", 4.1, 0.033, 0.927, 0.971
    ),
    "fraud_detection": SeedFigures("Fraud Detection", 1.8, 0.045, 0.992, 0.885),
    "code_generation": SeedFigures("Code Generation", 2.9, 0.019, 0.968, 0.933),
}

REVIEWER_NOTE = (
    "Human review inside the bench is the golden reviewer: every run that parks is decided at "
    "once, approved when its prediction equals the reference, else corrected to the reference. "
    "Its decisions count as human steps and its (near-zero) decision time is part of TTR."
)
NO_REVIEWER_NOTE = "No reviewer (--reviewer none): runs that park stay parked and do not complete."
NO_MATPLOTLIB = (
    "matplotlib is not installed, so this report has tables only: pip install matplotlib"
)


def rows(bench: WorkflowBench) -> list[tuple[str, str, str]]:
    """(column, measured, seed's) for one workflow, in the table's order."""
    f, seed = bench.figures, SEED.get(bench.name)
    return [
        ("runs", f"{f.runs} ({f.completed} ok, {f.failed} failed, {f.parked} parked)", ""),
        ("TTR median", secs(f.ttr_median), secs(seed.ttr) if seed else ""),
        ("TTR p95", secs(f.ttr_p95), ""),
        ("CPW", money(f.cpw), money(seed.cpw) if seed else ""),
        ("accuracy", accuracy_text(bench.accuracy), pct(seed.accuracy) if seed else ""),
        (
            "accuracy, agents alone",
            accuracy_text(bench.agent_accuracy) if bench.agent_accuracy else "—",
            "",
        ),
        ("agent utilization", pct(f.utilization), pct(seed.utilization) if seed else ""),
        ("escalated", pct(f.escalation_rate), ""),
        ("TTR outside model", pct(f.outside_model_share), ""),
        ("tokens / run", "—" if f.tokens_per_run is None else f"{f.tokens_per_run:.0f}", ""),
        ("cache hits / misses", f"{f.cache_hits} / {f.cache_misses}", ""),
    ]


def render_table(benches: Sequence[WorkflowBench], console: Console) -> None:
    """One row per workflow; under each measured figure, the seed's for that kind of workflow."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="relayflow bench (seed's figure below each measured one)")
    table.add_column("workflow", no_wrap=True)
    for name, _measured, _seed in rows(benches[0]) if benches else []:
        table.add_column(name, justify="right")
    for bench in benches:
        seed = SEED.get(bench.name)
        title = escape(seed.title) if seed else "no seed row"
        cells = [f"{escape(bench.name)}\n[dim]{title}[/dim]"]
        for _name, measured, theirs in rows(bench):
            shown = escape(measured)
            cells.append(f"{shown}\n[dim]seed {escape(theirs)}[/dim]" if theirs else shown)
        table.add_row(*cells)
    console.print(table)
    for bench in benches:
        if bench.accuracy.reason:
            console.print(f"{bench.name}: accuracy —: {bench.accuracy.reason}", markup=False)
    reviewers = [b.reviews for b in benches if b.reviews is not None]
    if reviewers:
        decided = sum(r.total for r in reviewers)
        counted = f"{decided} decision" + ("" if decided == 1 else "s")
        console.print(f"{REVIEWER_NOTE} ({counted})", markup=False, soft_wrap=True)
    else:
        console.print(NO_REVIEWER_NOTE, markup=False)


EXPERIMENT_COLUMNS = (
    "variant",
    "share",
    "runs",
    "accuracy [95 % CI]",
    "Δ vs baseline [95 % CI]",
    "p",
    "significant",
    "Δ before review [95 % CI]",
    "TTR median",
    "Δ TTR [95 % CI]",
    "CPW",
)


def diff_text(diff: Diff | None, *, scale: float = 100, unit: str = " pt") -> str:
    """``+4.2 pt [+1.0, +7.5]`` (points of a metric in [0, 1]); with scale 1000, ms."""
    if diff is None:
        return "—"
    return (
        f"{diff.mean_diff * scale:+.1f}{unit} [{diff.low * scale:+.1f}, {diff.high * scale:+.1f}]"
    )


def ttr_diff_text(diff: Diff | None) -> str:
    """A TTR difference in ms, or in seconds once it reaches a second."""
    if diff is None:
        return "—"
    if max(abs(diff.low), abs(diff.high), abs(diff.mean_diff)) >= 1:
        return diff_text(diff, scale=1, unit=" s")
    return diff_text(diff, scale=1000, unit=" ms")


def experiment_rows(experiment: Experiment) -> list[list[str]]:
    """One row per variant (the columns of EXPERIMENT_COLUMNS); the winner is starred."""
    from relayflow.bench.compare import significant

    out = []
    for name, share, bench in experiment.arms:
        c = experiment.comparison(name)
        baseline = name == experiment.baseline
        label = name + (" ★" if name == experiment.winner else "")
        label += " (baseline)" if baseline else ""
        f = bench.figures
        out.append(
            [
                label,
                f"{share * 100:.0f} %",
                str(f.runs),
                accuracy_text(bench.accuracy),
                "—" if baseline else diff_text(c.metric if c else None),
                "—" if baseline or c is None or c.metric is None else f"{c.metric.p_value:.3f}",
                "—"
                if baseline or c is None or c.metric is None
                else ("yes" if significant(c.metric) else "no"),
                "—" if baseline else diff_text(c.agent_metric if c else None),
                secs(f.ttr_median),
                "—" if baseline else ttr_diff_text(c.ttr if c else None),
                money(f.cpw),
            ]
        )
    return out


def rollout_hint(experiment: Experiment) -> str | None:
    """The command that gives the winner more traffic, when its lead is significant."""
    from relayflow.bench.compare import deciding, significant

    winner = experiment.winner
    c = experiment.comparison(winner) if winner else None
    diff = deciding(c) if c is not None else None
    if diff is None or not significant(diff) or diff.mean_diff <= 0:
        return None
    return f"relayflow variants rollout {experiment.file} {winner} --step 0.25"


def render_experiments(experiments: Sequence[Experiment], console: Console) -> None:
    """Per workflow with variants: each variant beside the baseline, the paired differences
    on the same items, and the winner."""
    from rich.table import Table

    for experiment in experiments:
        metric = experiment.metric or "no evaluate metric"
        table = Table(
            title=f"{experiment.workflow}: variants on the same items "
            f"(Δ = variant − {experiment.baseline}, paired bootstrap; {metric})"
        )
        for column in EXPERIMENT_COLUMNS:
            table.add_column(column, justify="left" if column == "variant" else "right")
        for row in experiment_rows(experiment):
            table.add_row(*row)
        console.print(table)
        console.print(f"winner: {experiment.verdict}", markup=False, soft_wrap=True)
        hint = rollout_hint(experiment)
        if hint:
            console.print(f"roll it out: {hint}", markup=False, soft_wrap=True)


def experiment_json(experiment: Experiment) -> dict[str, Any]:
    from relayflow.bench.compare import significant

    comparisons = []
    for c in experiment.comparisons:
        data = asdict(c)
        data["metric_significant"] = significant(c.metric)
        data["ttr_significant"] = significant(c.ttr)
        data["agent_metric_significant"] = significant(c.agent_metric)
        comparisons.append(data)
    return {
        "workflow": experiment.workflow,
        "file": experiment.file,
        "metric": experiment.metric,
        "baseline": experiment.baseline,
        "variants": [
            {
                "name": name,
                "share": share,
                "workflow": bench.name,
                "accuracy": asdict(bench.accuracy),
                "ttr_median": bench.figures.ttr_median,
                "ttr_p95": bench.figures.ttr_p95,
                "cpw": bench.figures.cpw,
                "utilization": bench.figures.utilization,
            }
            for name, share, bench in experiment.arms
        ],
        "comparisons": comparisons,
        "winner": experiment.winner,
        "verdict": experiment.verdict,
        "rollout": rollout_hint(experiment),
    }


def to_json(
    benches: Sequence[WorkflowBench],
    meta: Mapping[str, Any],
    experiments: Sequence[Experiment] = (),
) -> dict[str, Any]:
    """Everything measured: per workflow its figures and the seed's, per run, per step, per
    routed step its tiers; per workflow with variants, their comparison."""
    from relayflow.bench.tier_report import tiers_json

    workflows = []
    for bench in benches:
        seed = SEED.get(bench.name)
        figures = {
            **asdict(bench.figures),
            "cpw_model": bench.figures.cpw_model,
            "cpw_compute": bench.figures.cpw_compute,
        }
        workflows.append(
            {
                "name": bench.name,
                "variant": bench.variant,
                "file": bench.file,
                "seed": asdict(seed) if seed else None,
                "figures": figures,
                "accuracy": asdict(bench.accuracy),
                "agent_accuracy": (
                    asdict(bench.agent_accuracy) if bench.agent_accuracy is not None else None
                ),
                "references": bench.references,
                "reviews": asdict(bench.reviews) if bench.reviews is not None else None,
                "options": asdict(bench.options),
                "wall_seconds": bench.wall_seconds,
                "cpu_seconds": bench.cpu_seconds,
                "compute_rate_per_cpu_second": bench.compute_rate,
                "passes": [asdict(p) for p in bench.passes],
                "steps": [asdict(s) for s in bench.steps],
                "tiers": tiers_json(bench),
                "runs": [_run_json(bench, run) for run in bench.runs],
            }
        )
    return {
        **meta,
        "workflows": workflows,
        "experiments": [experiment_json(e) for e in experiments],
    }


def _run_json(bench: WorkflowBench, run: Any) -> dict[str, Any]:
    from relayflow.bench.tiers import tier_of

    data = asdict(run)
    del data["output"], data["first_start"], data["last_end"]
    data["ttr"] = run.ttr
    data["pass"] = bench.pass_of(run)
    data["tiers"] = {step: tier_of(run, step) for step in run.answered_by}
    data["steps"] = [
        {
            "step": s.step,
            "actor": s.actor,
            "attempt": s.attempt,
            "seconds": s.seconds,
            "model_seconds": s.model_seconds,
        }
        for s in run.steps
    ]
    return data


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def plots(benches: Sequence[WorkflowBench]) -> dict[str, str] | None:
    """PNG data URIs of the latency, per-stage and cost plots, one panel per workflow (each on
    its own scale: milliseconds and minutes do not share an axis); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    # ``vert`` is deprecated from matplotlib 3.11, ``orientation`` is new in 3.10
    major, minor = (int(part) for part in matplotlib.__version__.split(".")[:2])
    side: dict[str, Any] = (
        {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}
    )
    cmap = plt.get_cmap("tab20")
    out: dict[str, str] = {}

    def panels(title: str) -> tuple[Any, list[Any]]:
        size = (8, 0.6 + 1.3 * len(benches))
        fig, axes = plt.subplots(len(benches), 1, figsize=size, layout="constrained")
        fig.suptitle(title)
        return fig, list(axes) if len(benches) > 1 else [axes]

    fig, axes = panels("Latency distribution: TTR of completed runs (s)")
    for ax, bench in zip(axes, benches, strict=True):
        ttrs = [r.ttr for r in bench.runs if r.status == "succeeded" and r.ttr is not None]
        ax.boxplot([ttrs or [0.0]], showmeans=True, **side)
        ax.set_yticks([1], [bench.name])
    out["latency"] = _png(fig)

    fig, axes = panels("Time per stage: mean seconds of each step, stacked in workflow order")
    for ax, bench in zip(axes, benches, strict=True):
        left = 0.0
        for index, step in enumerate(bench.steps):
            ax.barh(0, step.mean, left=left, color=cmap(index % cmap.N), label=step.step)
            left += step.mean
        ax.set_yticks([0], [bench.name])
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    out["stages"] = _png(fig)

    fig, axes = panels("Cost per completed run ($): model / API and compute (CPU s x rate)")
    for ax, bench in zip(axes, benches, strict=True):
        model, compute = bench.figures.cpw_model or 0.0, bench.figures.cpw_compute or 0.0
        ax.barh(0, model, color=cmap(0), label="model / API")
        ax.barh(0, compute, left=model, color=cmap(2), label="compute")
        ax.set_yticks([0], [bench.name])
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    out["cost"] = _png(fig)
    return out


def variant_plot(experiment: Experiment) -> str | None:
    """A PNG data URI: each variant's accuracy with its 95 % interval (None without
    matplotlib or without accuracy)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    measured = [
        (name, bench.accuracy)
        for name, _share, bench in experiment.arms
        if bench.accuracy.value is not None
    ]
    if not measured:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.5 * len(measured)), layout="constrained")
    for row, (_name, acc) in enumerate(measured):
        value = acc.value or 0.0
        low = acc.low if acc.low is not None else value
        high = acc.high if acc.high is not None else value
        ax.errorbar(
            [value], [row], xerr=[[value - low], [high - value]], fmt="o", capsize=4, color="C0"
        )
    ax.set_yticks(range(len(measured)), [name for name, _acc in measured])
    ax.invert_yaxis()
    ax.set_xlabel(f"{experiment.metric} (95 % bootstrap interval)")
    ax.set_title(f"{experiment.workflow}: variants on the same items")
    return _png(fig)


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}.seed{color:#888;font-size:90%}"
)


def _experiments_html(experiments: Sequence[Experiment]) -> list[str]:
    esc = html.escape
    parts = ["<h2>Variants</h2>"] if experiments else []
    for experiment in experiments:
        metric = experiment.metric or "no evaluate metric"
        parts.append(
            f"<h3>{esc(experiment.workflow)}</h3><p>Every variant ran on the same items; "
            f"Δ = variant − {esc(experiment.baseline)} per item ({esc(metric)}), paired "
            "bootstrap, 95 % interval; significant when the interval excludes 0.</p>"
        )
        rows_ = [[esc(cell) for cell in row] for row in experiment_rows(experiment)]
        parts.append(_table([esc(c) for c in EXPERIMENT_COLUMNS], rows_))
        parts.append(f"<p><b>winner:</b> {esc(experiment.verdict)}</p>")
        hint = rollout_hint(experiment)
        if hint:
            parts.append(f"<p>roll it out: <code>{esc(hint)}</code></p>")
        image = variant_plot(experiment)
        if image is not None:
            parts.append(f'<img alt="variants" src="{image}">')
    return parts


def render_html(
    benches: Sequence[WorkflowBench],
    meta: Mapping[str, Any],
    experiments: Sequence[Experiment] = (),
) -> str:
    esc = html.escape
    head = ["workflow", *(name for name, _m, _s in (rows(benches[0]) if benches else []))]
    body = []
    for bench in benches:
        seed = SEED.get(bench.name)
        cells = [f"{esc(bench.name)}<div class=seed>{esc(seed.title) if seed else ''}</div>"]
        for _name, measured, theirs in rows(bench):
            under = f"<div class=seed>seed {esc(theirs)}</div>" if theirs else ""
            cells.append(esc(measured) + under)
        body.append(cells)
    parts = [
        f"<h1>relayflow bench</h1><p>{esc(str(meta.get('created', '')))} · "
        f"{esc(str(meta.get('machine', '')))}</p>",
        "<h2>Figures</h2>",
        _table(head, body),
        f"<p>{esc(REVIEWER_NOTE if meta.get('reviewer') == 'golden' else NO_REVIEWER_NOTE)}</p>",
    ]
    for bench in benches:
        if bench.accuracy.reason:
            parts.append(f"<p>{esc(bench.name)}: accuracy —: {esc(bench.accuracy.reason)}</p>")
    from relayflow.bench.tier_report import tiers_html

    parts.extend(tiers_html(benches))
    parts.extend(_experiments_html(experiments))
    images = plots(benches)
    if images is None:
        parts.append(f"<p><b>{esc(NO_MATPLOTLIB)}</b></p>")
    else:
        for key, title in (("latency", "Latency"), ("stages", "Per stage"), ("cost", "Cost")):
            parts.append(f'<h2>{title}</h2><img alt="{key}" src="{images[key]}">')
    parts.append("<h2>Steps</h2>")
    for bench in benches:
        steps = [
            [esc(s.step), esc(s.agent_type), str(s.n), secs(s.mean), secs(s.median)]
            + [secs(s.p95), secs(s.model_seconds / s.n if s.n else None), str(s.human)]
            for s in bench.steps
        ]
        parts.append(f"<h3>{esc(bench.name)}</h3>")
        columns = ["step", "type", "n", "mean", "median", "p95", "model / step", "by a person"]
        parts.append(_table(columns, steps))
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>relayflow bench</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )


def write_html(
    path: Path,
    benches: Sequence[WorkflowBench],
    meta: Mapping[str, Any],
    experiments: Sequence[Experiment] = (),
) -> None:
    path.write_text(render_html(benches, meta, experiments), encoding="utf-8")
