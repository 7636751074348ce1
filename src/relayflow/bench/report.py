"""The bench's outputs: a Rich table beside the seed's figures, ``bench.json`` with everything,
and a self-contained ``report.html`` whose plots are PNGs embedded as data URIs."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from relayflow.bench.reviewer import Accuracy
    from relayflow.bench.runner import WorkflowBench


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


def secs(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def money(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:.3f}" if value >= 0.01 or value == 0 else f"${value:.2e}"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def accuracy_text(acc: Accuracy) -> str:
    if acc.value is None:
        return "—"
    ci = ""
    if acc.low is not None and acc.high is not None:
        ci = f" [{acc.low * 100:.1f}–{acc.high * 100:.1f}]"
    return f"{pct(acc.value)}{ci} {acc.metric}"


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


def to_json(benches: Sequence[WorkflowBench], meta: Mapping[str, Any]) -> dict[str, Any]:
    """Everything measured: per workflow its figures and the seed's, per run, per step."""
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
                "runs": [_run_json(bench, run) for run in bench.runs],
            }
        )
    return {**meta, "workflows": workflows}


def _run_json(bench: WorkflowBench, run: Any) -> dict[str, Any]:
    data = asdict(run)
    del data["output"], data["first_start"], data["last_end"]
    data["ttr"] = run.ttr
    data["pass"] = bench.pass_of(run)
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


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}.seed{color:#888;font-size:90%}"
)


def _table(head: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """An HTML table; cells are already escaped."""
    top = "".join(f"<th>{h}</th>" for h in head)
    lines = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><tr>{top}</tr>{lines}</table>"


def render_html(benches: Sequence[WorkflowBench], meta: Mapping[str, Any]) -> str:
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


def write_html(path: Path, benches: Sequence[WorkflowBench], meta: Mapping[str, Any]) -> None:
    path.write_text(render_html(benches, meta), encoding="utf-8")
