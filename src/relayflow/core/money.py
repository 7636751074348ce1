"""The one way relayflow writes an amount of money (costs, CPW, spend, budget limits), so that the
CLI, the bench report, the review pages and budget messages show the same figure the same way."""

from __future__ import annotations

import math

#: an amount shows this many significant digits, so that a fraction of a cent stays visible
SIGNIFICANT = 4
#: and never more decimals than the ledger counts (nano-units)
MAX_DECIMALS = 9


def money(value: float | None, *, symbol: str = "$") -> str:
    """``value`` with at least two decimals and up to four significant digits, thousands
    separated: ``$5.00``, ``$4.985``, ``$0.045``, ``$0.01423``, ``$0.0000123``, ``$1,234.57``;
    ``—`` for None. ``symbol`` is the currency sign (budget amounts have none: ``symbol=""``)."""
    if value is None:
        return "—"
    magnitude = abs(value)
    decimals = 2
    if magnitude > 0:
        decimals = max(2, SIGNIFICANT - 1 - math.floor(math.log10(magnitude)))
    text = f"{magnitude:,.{min(decimals, MAX_DECIMALS)}f}"
    whole, _, part = text.partition(".")
    part = part.rstrip("0").ljust(2, "0")
    sign = "-" if value < 0 and (whole.strip("0,") or part.strip("0")) else ""
    return f"{sign}{symbol}{whole}.{part}"


__all__ = ["money"]
