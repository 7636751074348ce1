"""A diagnosis shown three ways: a Rich table with the bottleneck and its knobs, a JSON document,
and a self-contained HTML report whose chart of the shares is a PNG embedded as a data URI."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relayflow.core.money import money
from relayflow.diagnose.bottleneck import RULE
from relayflow.diagnose.knobs import OBJECTIVE_NAMES, OBJECTIVES, Knob, Objective

if TYPE_CHECKING:
    from rich.console import Console

    from relayflow.diagnose.diagnosis import Diagnosis
    from relayflow.diagnose.measure import StepStats

COLUMNS = ("step", "type", "runs", "TTR", "cost", "failures", "escalations", "wrong answers")
KNOB_COLUMNS = ("step", "knob", "setting", "now", "the optimizer would try", "moves")
NO_MATPLOTLIB = (
    "matplotlib is not installed, so this report has tables only: pip install matplotlib"
)


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def secs(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def count(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def step_cells(d: Diagnosis, step: StepStats) -> list[str]:
    """The table's cells for one step: each objective's share, with what it is a share of."""
    m = d.measured

    def share(objective: Objective, detail: str) -> str:
        return f"{pct(m.share(objective, step))} ({detail})"

    name = step.step + (" ★" if d.bottleneck is not None and d.bottleneck.step == step.step else "")
    return [
        name,
        step.agent_type,
        str(step.runs),
        share("ttr", f"median {secs(step.median_seconds)}"),
        share("cost", money(step.cost)),
        share("failures", count(step.failures)),
        share("escalations", count(step.escalations)),
        share("wrong", count(step.wrong)),
    ]


def knob_cells(knob: Knob) -> list[str]:
    moves = ", ".join(OBJECTIVE_NAMES[o] for o in OBJECTIVES if o in knob.acts_on)
    return [knob.step, knob.kind, knob.setting, knob.current, knob.tries, moves]


def summary_lines(d: Diagnosis) -> list[str]:
    """The lines under the table: the runs, the objective leaders, the bottleneck, notes."""
    m, t = d.measured, d.measured.totals
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(t.by_status.items()))
    lines = [
        f"{t.runs} runs of {d.workflow} from {d.source} ({statuses}); TTR median "
        f"{secs(t.ttr_median)}; escalated {t.escalated_runs}; cost {money(m.total('cost'))}",
    ]
    if t.metric is not None and t.judged:
        lines.append(
            f"{t.metric} of the agents' answers before review: {pct(t.agent_score)} over "
            f"{t.judged} runs with a reference"
        )
    leaders = [f"{OBJECTIVE_NAMES[o]}: {d.leaders[o]}" for o in OBJECTIVES if d.leaders.get(o)]
    if leaders:
        lines.append("largest share — " + "; ".join(leaders))
    b = d.bottleneck
    if b is None:
        lines.append("bottleneck: none (no step has a part in any objective)")
    else:
        lines.append(
            f"bottleneck: {b.step}, for {OBJECTIVE_NAMES[b.objective]} ({b.chosen_by}) — {b.reason}"
        )
        if b.chosen_by == "by the rule":
            lines.append(f"rule: {RULE}")
        objective = OBJECTIVE_NAMES[b.objective]
        if not b.knobs:
            lines.append(f"{b.step} has no setting the optimizer searches")
        elif not any(k.moves(b.objective) for k in b.knobs):
            fix = (
                "fix the step itself (see its failed runs: `relayflow runs list --status failed`)"
                if b.objective == "failures"
                else "change the step itself (its script, its settings)"
            )
            lines.append(
                f"no setting the optimizer searches moves the {objective} of {b.step}: {fix}; "
                "its other knobs are below"
            )
    covered = sum(s.seconds for s in m.steps)
    if t.run_seconds > 0:
        lines.append(
            f"the steps' own seconds are {pct(covered / t.run_seconds)} of the runs' time; "
            "the rest is between steps (the runner, the store, waiting for a slot)"
        )
    lines.extend(f"note: {n}" for n in m.notes)
    return lines


def render_table(d: Diagnosis, console: Console) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"relayflow diagnose {escape(d.workflow)}: each step's share (★ the bottleneck)"
    )
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("step", "type") else "right")
    for step in d.measured.steps:
        bold = d.bottleneck is not None and d.bottleneck.step == step.step
        table.add_row(*map(escape, step_cells(d, step)), style="bold" if bold else None)
    console.print(table)
    for line in summary_lines(d):
        console.print(line, markup=False, soft_wrap=True)
    if d.bottleneck is not None and d.bottleneck.knobs:
        knobs = Table(title=f"what relayflow optimize would try for {escape(d.bottleneck.step)}")
        for column in KNOB_COLUMNS:
            knobs.add_column(column, overflow="fold")
        for knob in d.bottleneck.knobs:
            knobs.add_row(*map(escape, knob_cells(knob)))
        console.print(knobs)


def knob_json(knob: Knob) -> dict[str, Any]:
    return {
        "kind": knob.kind,
        "step": knob.step,
        "setting": knob.setting,
        "current": knob.current,
        "tries": knob.tries,
        "acts_on": [o for o in OBJECTIVES if o in knob.acts_on],
    }


def to_json(d: Diagnosis) -> dict[str, Any]:
    m, t = d.measured, d.measured.totals
    steps = []
    for s in m.steps:
        steps.append(
            {
                "step": s.step,
                "agent_type": s.agent_type,
                "runs": s.runs,
                "seconds": s.seconds,
                "median_seconds": s.median_seconds,
                "review_seconds": s.review_seconds,
                "model_seconds": s.model_seconds,
                "model_cost": s.model_cost,
                "compute_cost": s.compute_cost,
                "cost": s.cost,
                "failures": s.failures,
                "failed_runs": s.failed_runs,
                "escalations": s.escalations,
                "wrong": s.wrong,
                "corrected": s.corrected,
                "confidence_from": s.confidence_from,
                "shares": {o: m.share(o, s) for o in OBJECTIVES},
            }
        )
    b = d.bottleneck
    return {
        "workflow": d.workflow,
        "file": d.file,
        "source": d.source,
        "store": d.store,
        "totals": {
            "runs": t.runs,
            "by_status": dict(t.by_status),
            "run_seconds": t.run_seconds,
            "ttr_median": t.ttr_median,
            "escalated_runs": t.escalated_runs,
            "judged": t.judged,
            "metric": t.metric,
            "agent_score": t.agent_score,
            **{o: m.total(o) for o in OBJECTIVES if o != "ttr"},
        },
        "steps": steps,
        "leaders": dict(d.leaders),
        "rule": RULE,
        "bottleneck": None
        if b is None
        else {
            "step": b.step,
            "objective": b.objective,
            "share": b.share,
            "reason": b.reason,
            "chosen_by": b.chosen_by,
            "knobs": [knob_json(k) for k in b.knobs],
        },
        "notes": list(m.notes),
    }


def write_json(path: Path, d: Diagnosis) -> None:
    path.write_text(json.dumps(to_json(d), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def chart(d: Diagnosis) -> str | None:
    """A PNG data URI: per step, its share of each objective side by side (None without
    matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import numpy as np

    steps = list(d.measured.steps)
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.9 * max(1, len(steps))), layout="constrained")
    width = 0.8 / len(OBJECTIVES)
    rows = np.arange(len(steps))
    cmap = plt.get_cmap("tab10")
    for i, objective in enumerate(OBJECTIVES):
        values = [(d.measured.share(objective, s) or 0.0) * 100 for s in steps]
        ax.barh(
            rows + i * width - 0.4 + width / 2,
            values,
            height=width,
            color=cmap(i),
            label=OBJECTIVE_NAMES[objective],
        )
    labels = [
        s.step + (" ★" if d.bottleneck and d.bottleneck.step == s.step else "") for s in steps
    ]
    ax.set_yticks(rows, labels)
    ax.invert_yaxis()
    ax.set_xlabel("share of the workflow's total (%)")
    ax.set_title(f"{d.workflow}: each step's share of each objective")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}.bottleneck{font-weight:bold;background:#fff4d6}"
)


def _table(head: Sequence[str], body: Sequence[Sequence[str]], marked: int | None = None) -> str:
    esc = html.escape
    top = "".join(f"<th>{esc(h)}</th>" for h in head)
    lines = "".join(
        ("<tr class=bottleneck>" if i == marked else "<tr>")
        + "".join(f"<td>{esc(c)}</td>" for c in row)
        + "</tr>"
        for i, row in enumerate(body)
    )
    return f"<table><tr>{top}</tr>{lines}</table>"


def render_html(d: Diagnosis) -> str:
    esc = html.escape
    steps = list(d.measured.steps)
    marked = next(
        (i for i, s in enumerate(steps) if d.bottleneck and s.step == d.bottleneck.step), None
    )
    parts = [
        f"<h1>relayflow diagnose: {esc(d.workflow)}</h1>",
        f"<p>{esc(d.file)} · store {esc(d.store)}</p>",
        "<h2>Each step's share</h2>",
        _table(COLUMNS, [step_cells(d, s) for s in steps], marked),
        "".join(f"<p>{esc(line)}</p>" for line in summary_lines(d)),
    ]
    image = chart(d)
    parts.append(
        f'<img alt="shares per step" src="{image}">'
        if image
        else f"<p><b>{esc(NO_MATPLOTLIB)}</b></p>"
    )
    if d.bottleneck is not None and d.bottleneck.knobs:
        parts.append(f"<h2>What relayflow optimize would try for {esc(d.bottleneck.step)}</h2>")
        parts.append(_table(KNOB_COLUMNS, [knob_cells(k) for k in d.bottleneck.knobs]))
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>relayflow diagnose</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )


def write_html(path: Path, d: Diagnosis) -> None:
    path.write_text(render_html(d), encoding="utf-8")
