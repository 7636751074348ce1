"""The one money formatter: at least cents, four significant digits, the ledger's nano-units at
most, the same in the CLI, the bench report, the review pages and budget messages."""

from __future__ import annotations

import pytest

from relayflow.core.money import money


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "$0.00"),
        (5, "$5.00"),
        (4.98, "$4.98"),
        (0.1, "$0.10"),
        (0.1 + 0.2, "$0.30"),  # float noise is not shown
        (4.985, "$4.985"),  # a fraction of a cent above a limit stays visible
        (5.0012, "$5.001"),
        (0.045, "$0.045"),
        (0.0142345, "$0.01423"),
        (0.00015, "$0.00015"),
        (0.0000123, "$0.0000123"),
        (0.000000001, "$0.000000001"),
        (0.0000000001, "$0.00"),  # below a nano-unit
        (1234.5678, "$1,234.57"),
        (9.99999, "$10.00"),
        (-0.5, "-$0.50"),
        (None, "—"),
    ],
)
def test_money(value: float | None, text: str) -> None:
    assert money(value) == text


def test_a_budget_amount_has_no_currency_sign() -> None:
    assert money(4.98, symbol="") == "4.98"
    assert money(1000, symbol="€") == "€1,000.00"
