"""The bench's tiers (bench/tiers.py) as a Rich table, JSON and an HTML section with a plot:
per routed step, each candidate's and a person's share of the items and accuracy on them."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from relayflow.bench.formats import accuracy_text, pct
from relayflow.bench.formats import html_table as _table
from relayflow.bench.formats import png_uri as _png
from relayflow.bench.tiers import PERSON

if TYPE_CHECKING:
    from rich.console import Console

    from relayflow.bench.runner import WorkflowBench

TIER_COLUMNS = (
    "workflow",
    "step",
    "tier",
    "items",
    "share",
    "accuracy [95 % CI]",
    "then to a person",
    "agents' answer, reviewed",
)
TIER_NOTE = (
    "A tier is the router candidate whose answer an item kept, or a person when a reviewer "
    "decided the item after the routed step; accuracy is the evaluate metric on that tier's "
    "completed items. 'then to a person': the candidate's answers that a reviewer decided "
    "(counted under person); 'agents' answer, reviewed': the metric of those answers before "
    "the decision."
)


def tier_rows(benches: Sequence[WorkflowBench]) -> list[list[str]]:
    """One row per tier of each routed step (the columns of TIER_COLUMNS)."""
    out = []
    for bench in benches:
        for step in bench.tiers:
            for tier in step.tiers:
                before = tier.before_review
                out.append(
                    [
                        bench.name,
                        step.step if step.model is None else f"{step.step} ({step.model})",
                        tier.name,
                        f"{tier.items} of {step.items}",
                        pct(tier.share),
                        accuracy_text(tier.accuracy),
                        "" if tier.name == PERSON else str(tier.escalated),
                        accuracy_text(before) if before is not None else "",
                    ]
                )
    return out


def render_tiers(benches: Sequence[WorkflowBench], console: Console) -> None:
    """The tiers table, when a workflow has a routed step."""
    from rich.table import Table

    body = tier_rows(benches)
    if not body:
        return
    table = Table(title="tiers: who answered the items of each routed step")
    for column in TIER_COLUMNS:
        table.add_column(column, justify="left" if column in TIER_COLUMNS[:3] else "right")
    for row in body:
        table.add_row(*row)
    console.print(table)
    console.print(TIER_NOTE, markup=False, soft_wrap=True)


def tiers_json(bench: WorkflowBench) -> list[dict[str, Any]]:
    return [asdict(step) for step in bench.tiers]


def tiers_html(benches: Sequence[WorkflowBench]) -> list[str]:
    """The HTML section: the table and a bar of the shares per routed step."""
    esc = html.escape
    body = tier_rows(benches)
    if not body:
        return []
    parts = [
        "<h2>Tiers</h2>",
        f"<p>{esc(TIER_NOTE)}</p>",
        _table([esc(c) for c in TIER_COLUMNS], [[esc(c) for c in row] for row in body]),
    ]
    image = tier_plot(benches)
    if image is not None:
        parts.append(f'<img alt="tiers" src="{image}">')
    return parts


def tier_plot(benches: Sequence[WorkflowBench]) -> str | None:
    """A PNG data URI: per routed step, a bar split into each tier's share, labelled with its
    accuracy (None without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        return None
    steps = [(bench.name, step) for bench in benches for step in bench.tiers if step.items]
    if not steps:
        return None
    names = list(dict.fromkeys(t.name for _, step in steps for t in step.tiers))
    cmap = plt.get_cmap("tab10")
    color = {name: cmap(index % cmap.N) for index, name in enumerate(names)}
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.6 * len(steps)), layout="constrained")
    for row, (_workflow, step) in enumerate(steps):
        left = 0.0
        for tier in step.tiers:
            if not tier.items:
                continue
            ax.barh(row, tier.share, left=left, color=color[tier.name], edgecolor="white")
            value = tier.accuracy.value
            if tier.share >= 0.08:
                shown = "" if value is None else f"\n{value * 100:.0f} %"
                ax.text(left + tier.share / 2, row, f"{tier.name}{shown}", ha="center",
                        va="center", fontsize=7)  # fmt: skip
            left += tier.share
    ax.set_yticks(range(len(steps)), [f"{w}: {s.step}" for w, s in steps])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the step's items (label: tier and its accuracy)")
    handles = [Patch(color=color[name]) for name in names]
    ax.legend(handles, names, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title("Tiers: who answered each routed step")
    return _png(fig)
