"""What ``relayflow optimize`` writes: ``optimize.json`` with every measured point, and a
self-contained ``report.html`` with the Pareto front plotted (PNGs embedded as data URIs)."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from relayflow.optimize.overlay import settings_text
from relayflow.optimize.points import Gain, Point, Value
from relayflow.optimize.search import Outcome
from relayflow.schema.optimize import MAXIMIZE

LABELS = {
    "metric": "metric (after review)",
    "agent_metric": "metric (agents alone)",
    "cpw": "cost per workflow",
    "ttr": "TTR median (s)",
    "utilization": "agent utilization",
}
ALL = ("metric", "agent_metric", "cpw", "ttr", "utilization")


def value_text(objective: str, value: Value | None) -> str:
    if value is None or value.value is None:
        return "—"

    def one(v: float) -> str:
        if objective in ("metric", "agent_metric", "utilization"):
            return f"{v * 100:.1f}"
        if objective == "ttr":
            return f"{v:.3g}"
        return f"{v:.3g}"

    unit = " %" if objective in ("metric", "agent_metric", "utilization") else ""
    ci = ""
    if value.low is not None and value.high is not None:
        ci = f" [{one(value.low)}–{one(value.high)}]"
    return f"{one(value.value)}{ci}{unit}"


def gain_text(gain: Gain) -> str:
    scale = 100 if gain.objective in ("metric", "agent_metric", "utilization") else 1
    mark = " ▲" if gain.better else (" ▼" if gain.worse else "")
    return f"{gain.mean * scale:+.3g} [{gain.low * scale:+.3g}, {gain.high * scale:+.3g}]{mark}"


def _point_json(point: Point) -> dict[str, Any]:
    return {
        "number": point.number,
        "params": dict(point.params),
        "values": {
            name: {"value": v.value, "low": v.low, "high": v.high}
            for name, v in point.values.items()
        },
        "runs": point.runs,
        "completed": point.completed,
        "fresh_calls": point.fresh_calls,
        "fresh_cost": point.fresh_cost,
        "wall_seconds": point.wall_seconds,
        "feasible": point.feasible,
        "violations": dict(point.violations),
    }


def _gain_json(gain: Gain) -> dict[str, Any]:
    return {
        "objective": gain.objective,
        "n": gain.n,
        "mean": gain.mean,
        "low": gain.low,
        "high": gain.high,
        "significant_gain": gain.better,
        "significant_loss": gain.worse,
    }


def to_json(outcome: Outcome, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    import dataclasses

    est = outcome.estimate
    holdout = outcome.holdout
    return {
        "workflow": outcome.workflow,
        "file": outcome.file,
        "settings": {
            **{k: v for k, v in dataclasses.asdict(outcome.settings).items() if k != "constraints"},
            "constraints": {k: str(v) for k, v in outcome.settings.constraints.items()},
        },
        "knobs": [
            {"name": k.name, "values": k.describe(), "baseline": k.baseline}
            for k in outcome.space.knobs
        ],
        "split": outcome.split,
        "dev_items": outcome.dev_items,
        "holdout_items": outcome.holdout_items,
        "references": outcome.references,
        "pilot": {"seconds": outcome.pilot_seconds, "calls": outcome.pilot_calls},
        "estimate": dataclasses.asdict(est),
        "spent": {
            "calls": outcome.spent_calls,
            "cost": outcome.spent_cost,
            "seconds": outcome.spent_seconds,
        },
        "stopped": outcome.stopped,
        "baseline": _point_json(outcome.baseline),
        "points": [_point_json(p) for p in outcome.points],
        "front": [p.number for p in outcome.front],
        "dev_gains": {
            str(n): [_gain_json(g) for g in found] for n, found in outcome.dev_gains.items()
        },
        "chosen": outcome.chosen.number if outcome.chosen is not None else None,
        "verdict": outcome.verdict,
        "holdout": None
        if holdout is None
        else {
            "baseline": _point_json(holdout.baseline),
            "chosen": _point_json(holdout.chosen),
            "gains": [_gain_json(g) for g in holdout.gains],
            "recommended": holdout.recommended,
            "reason": holdout.reason,
        },
        "notes": list(outcome.notes),
        **(extra or {}),
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def front_plot(outcome: Outcome) -> str | None:
    """The front as a PNG data URI: the first objective against each other one (or against
    the trial number when there is one objective); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    objectives = list(outcome.settings.objectives)
    first = objectives[0]
    others = objectives[1:] or ["trial"]
    fig, axes = plt.subplots(1, len(others), figsize=(4.6 * len(others), 4), squeeze=False)
    front = {p.number for p in outcome.front}
    chosen = outcome.chosen.number if outcome.chosen is not None else None
    for ax, other in zip(axes[0], others, strict=True):
        for point in outcome.points:
            y = point.values.get(first)
            if y is None or y.value is None:
                continue
            if other == "trial":
                x_value, x_err = float(point.number), None
            else:
                x = point.values.get(other)
                if x is None or x.value is None:
                    continue
                x_value, x_err = x.value, _err(x)
            on_front = point.number in front
            style: dict[str, Any] = {
                "color": "tab:blue" if on_front else "0.7",
                "alpha": 1 if on_front else 0.6,
            }
            ax.errorbar(
                x_value,
                y.value,
                yerr=_err(y) if on_front else None,
                xerr=x_err if on_front else None,
                fmt="o",
                ms=5,
                capsize=2,
                **style,
            )
            if point.number == 0:
                ax.plot(x_value, y.value, "ks", ms=9, mfc="none", label="baseline")
            if point.number == chosen:
                ax.plot(x_value, y.value, "r*", ms=14, label="chosen")
        ax.set_xlabel(LABELS.get(other, other) + _arrow(other))
        ax.set_ylabel(LABELS.get(first, first) + _arrow(first))
        ax.grid(alpha=0.3)
        handles, names = ax.get_legend_handles_labels()
        if handles:
            unique = dict(zip(names, handles, strict=True))
            ax.legend(unique.values(), unique.keys(), fontsize=8)
    fig.suptitle(
        f"{outcome.workflow}: Pareto front (blue, 95 % intervals) of {len(outcome.points)} settings"
    )
    return _png(fig)


def _arrow(objective: str) -> str:
    if objective == "trial":
        return ""
    return " (higher is better)" if objective in MAXIMIZE else " (lower is better)"


def _err(value: Value) -> Any:
    if value.low is None or value.high is None or value.value is None:
        return None
    return [[max(0.0, value.value - value.low)], [max(0.0, value.high - value.value)]]


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(head: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{rows}</tbody></table>"


def point_rows(outcome: Outcome, points: Sequence[Point]) -> list[list[str]]:
    rows = []
    for point in points:
        mark = " (baseline)" if point.number == 0 else ""
        if outcome.chosen is not None and point.number == outcome.chosen.number:
            mark += " ★"
        rows.append(
            [f"{point.number}{mark}", settings_text(point.params) or "as written"]
            + [value_text(o, point.values.get(o)) for o in ALL]
        )
    return rows


def render_html(outcome: Outcome, overlay: Path | None) -> str:
    plot = front_plot(outcome)
    est = outcome.estimate
    head = ["trial", "settings", *[LABELS[o] for o in ALL]]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>relayflow optimize: {html.escape(outcome.workflow)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:4px 8px;font-size:13px}th{background:#f4f4f4}img{max-width:100%}</style>",
        "</head><body>",
        f"<h1>relayflow optimize: {html.escape(outcome.workflow)}</h1>",
        f"<p>{html.escape(outcome.file)} — objectives: "
        f"{html.escape(', '.join(outcome.settings.objectives))}; dev items: "
        f"{outcome.dev_items}, holdout items: {outcome.holdout_items} "
        f"({html.escape(outcome.split)}); "
        f"references: {html.escape(outcome.references)}.</p>",
        f"<p><b>{html.escape(outcome.verdict)}</b></p>",
    ]
    if outcome.holdout is not None:
        h = outcome.holdout
        word = "Recommended" if h.recommended else "Not recommended"
        parts.append(f"<p><b>{word}</b>: {html.escape(h.reason)}.</p>")
        parts.append("<h2>Holdout confirmation (chosen minus baseline; ▲ significant gain)</h2>")
        parts.append(
            _table(
                ["objective", "n", "gain [95 % CI]"],
                [[LABELS.get(g.objective, g.objective), str(g.n), gain_text(g)] for g in h.gains],
            )
        )
        parts.append(_table(head, point_rows(outcome, [h.baseline, h.chosen])))
    if overlay is not None:
        parts.append(
            f"<p>Overlay with the chosen settings: <code>{html.escape(str(overlay))}</code></p>"
        )
    if plot is not None:
        parts.append(f"<img alt='Pareto front' src='{plot}'>")
    else:
        parts.append("<p>matplotlib is not installed, so this report has tables only.</p>")
    parts.append("<h2>Pareto front (values with 95 % bootstrap intervals, on the dev split)</h2>")
    parts.append(_table(head, point_rows(outcome, outcome.front)))
    gains_rows = [
        [str(n), LABELS.get(g.objective, g.objective), gain_text(g)]
        for n, found in outcome.dev_gains.items()
        for g in found
    ]
    if gains_rows:
        parts.append("<h2>Front points against the baseline (dev split, paired bootstrap)</h2>")
        parts.append(_table(["trial", "objective", "gain [95 % CI]"], gains_rows))
    parts.append("<h2>Search space</h2>")
    parts.append(
        _table(
            ["knob", "values", "as written"],
            [[k.name, k.describe(), str(k.baseline)] for k in outcome.space.knobs],
        )
    )
    parts.append("<h2>Budget</h2>")
    parts.append(
        _table(
            ["", "model calls", "cost", "wall seconds"],
            [
                [
                    "pilot (the baseline)",
                    str(outcome.pilot_calls),
                    "",
                    f"{outcome.pilot_seconds:.1f}",
                ],
                ["estimated after it", str(est.calls), f"{est.cost:.4g}", f"{est.seconds:.1f}"],
                [
                    "spent after it",
                    str(outcome.spent_calls),
                    f"{outcome.spent_cost:.4g}",
                    f"{outcome.spent_seconds:.1f}",
                ],
            ],
        )
    )
    if outcome.stopped:
        parts.append(f"<p>Stopped early: {html.escape(outcome.stopped)}.</p>")
    parts.append("<h2>Every setting measured</h2>")
    parts.append(_table(head, point_rows(outcome, outcome.points)))
    for note in outcome.notes:
        parts.append(f"<p>Note: {html.escape(note)}</p>")
    parts.append(
        "<p>CPW here is each run's model cost plus its agent steps' seconds × the compute "
        "rate; TTR the sum of its steps' seconds. Both come from each step's first measurement "
        "(kept beside the step cache), so a step answered from the cache is priced as it ran.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(path: Path, outcome: Outcome, overlay: Path | None) -> None:
    path.write_text(render_html(outcome, overlay), encoding="utf-8")
