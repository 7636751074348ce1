"""Small formatting helpers of the bench's outputs (table cells, HTML tables, embedded PNGs),
shared by bench/report.py and the sections it shows (bench/tier_report.py)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relayflow.bench.reviewer import Accuracy


def secs(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def accuracy_text(acc: Accuracy) -> str:
    if acc.value is None:
        return "—"
    ci = ""
    if acc.low is not None and acc.high is not None:
        ci = f" [{acc.low * 100:.1f}–{acc.high * 100:.1f}]"
    return f"{pct(acc.value)}{ci} {acc.metric}"


def png_uri(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def html_table(head: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """An HTML table; cells are already escaped."""
    top = "".join(f"<th>{h}</th>" for h in head)
    lines = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><tr>{top}</tr>{lines}</table>"
