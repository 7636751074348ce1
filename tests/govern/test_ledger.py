"""The budget ledger and a workflow's budget on a real database (SQLite, and PostgreSQL when
the test setup started one): holds, settling, expiry, periods, soft alerts, token limits,
teams and tokens, and two processes sharing one budget."""

from __future__ import annotations

import calendar
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from relayflow.errors import BudgetExceeded
from relayflow.govern.budget import Budget, period_end, span_of, worst_case_tokens
from relayflow.govern.ledger import NANOS, Cap, Counter, Hold, Ledger, Over, close_ledgers
from relayflow.govern.principal import Principal, current_principal
from relayflow.providers.base import CompletionRequest
from relayflow.schema.file import BudgetSpec
from relayflow.store.records import BudgetAlertRecord
from relayflow.store.sql_store import SqlStore
from tests.govern.budget_support import Clock

#: 2026-11-25 23:00 UTC
LATE = float(calendar.timegm((2026, 11, 25, 23, 0, 0)))
WF = Counter("workflow", "scoring", "day", "2026-11-25")


@pytest.fixture(autouse=True)
def _fresh_engines() -> Iterator[None]:
    yield
    close_ledgers()


def alerts(store_url: str) -> list[BudgetAlertRecord]:
    store = SqlStore(store_url)
    try:
        return store.budget_alerts()
    finally:
        store.close()


def budget(store_url: str, *limits: dict[str, object], clock: Clock | None = None) -> Budget:
    spec = BudgetSpec.model_validate({"limits": list(limits)})
    return Budget(spec, "scoring", Ledger(store_url, clock=clock or Clock(LATE)))


def test_a_reservation_holds_until_settled_and_refuses_past_the_cap(store_url: str) -> None:
    ledger = Ledger(store_url, clock=Clock(LATE))
    cap = Cap(WF, 3 * NANOS, None)
    first = ledger.reserve([cap], [WF], 2 * NANOS, 10, ttl=600)
    assert isinstance(first, Hold)
    # held (not spent yet) counts: 2 held + 2 asked > 3
    over = ledger.reserve([cap], [WF], 2 * NANOS, 10, ttl=600)
    assert over == Over(0, "currency", 0, 2 * NANOS, 2 * NANOS, 3 * NANOS)
    spent, held = ledger.totals(WF)
    assert (spent.cost_nanos, held.cost_nanos, held.calls) == (0, 2 * NANOS, 1)
    # the call cost less than its worst case: the rest of the hold comes back
    after = ledger.settle(first, NANOS // 2, 7)
    assert after[WF] == (NANOS // 2, 7, 1)
    assert isinstance(ledger.reserve([cap], [WF], 2 * NANOS, 10, ttl=600), Hold)
    spent, held = ledger.totals(WF)
    assert (spent.cost_nanos, spent.tokens, held.cost_nanos) == (NANOS // 2, 7, 2 * NANOS)


def test_a_released_hold_frees_its_amount(store_url: str) -> None:
    ledger = Ledger(store_url, clock=Clock(LATE))
    cap = Cap(WF, NANOS, None)
    hold = ledger.reserve([cap], [WF], NANOS, 0, ttl=600)
    assert isinstance(hold, Hold)
    assert isinstance(ledger.reserve([cap], [WF], 1, 0, ttl=600), Over)
    ledger.release(hold)
    assert isinstance(ledger.reserve([cap], [WF], NANOS, 0, ttl=600), Hold)


def test_the_hold_of_a_dead_process_stops_counting_when_it_expires(store_url: str) -> None:
    clock = Clock(LATE)
    ledger = Ledger(store_url, clock=clock)
    cap = Cap(WF, NANOS, None)
    assert isinstance(ledger.reserve([cap], [WF], NANOS, 0, ttl=600), Hold)  # never settled
    clock.now += 599
    assert isinstance(ledger.reserve([cap], [WF], 1, 0, ttl=600), Over)
    clock.now += 2
    assert isinstance(ledger.reserve([cap], [WF], NANOS, 0, ttl=600), Hold)


def test_ten_calls_of_a_cent_fit_a_limit_of_ten_cents_exactly(store_url: str) -> None:
    b = budget(store_url, {"per": "workflow", "period": "day", "currency": 0.10})
    for _ in range(10):
        reserved = b.reserve(0.01, 0, ttl=600)
        assert reserved is not None
        b.settle(reserved, 0.01, 0)
    with pytest.raises(BudgetExceeded):
        b.reserve(0.01, 0, ttl=600)
    spent, _ = b.ledger.totals(WF)
    assert spent == (NANOS // 10, 0, 10)


def test_the_refusal_names_the_limit_the_spend_and_when_the_period_ends(store_url: str) -> None:
    b = budget(store_url, {"per": "workflow", "period": "day", "currency": 5.0})
    reserved = b.reserve(4.98, 0, ttl=600)
    assert reserved is not None
    b.settle(reserved, 4.98, 0)
    with pytest.raises(BudgetExceeded) as info:
        b.reserve(0.03, 0, ttl=600)
    assert str(info.value) == (
        "budget workflow 'scoring' per day (2026-11-25): limit 5.00, spent 4.98 + this call "
        "0.03 (worst case) would pass it — raise budget.limits[0].currency or wait until "
        "2026-11-26 00:00 UTC"
    )
    [alert] = alerts(store_url)
    assert (alert.kind, alert.count, alert.message) == ("hard currency", 1, str(info.value))


def test_a_new_day_starts_a_new_counter(store_url: str) -> None:
    clock = Clock(LATE)
    b = budget(store_url, {"per": "workflow", "period": "day", "currency": 0.02}, clock=clock)
    for _ in range(2):
        reserved = b.reserve(0.01, 0, ttl=600)
        assert reserved is not None
        b.settle(reserved, 0.01, 0)
    with pytest.raises(BudgetExceeded):
        b.reserve(0.01, 0, ttl=600)
    clock.now += 3600  # 2026-11-26 00:00 UTC
    reserved = b.reserve(0.01, 0, ttl=600)
    assert reserved is not None
    b.settle(reserved, 0.01, 0)
    assert b.ledger.totals(WF)[0].calls == 2
    assert b.ledger.totals(WF._replace(span="2026-11-26"))[0].calls == 1


def test_periods_are_utc_days_months_and_all_time() -> None:
    dec = float(calendar.timegm((2026, 12, 31, 23, 59, 59)))
    assert (span_of("day", dec), span_of("month", dec), span_of("total", dec)) == (
        "2026-12-31",
        "2026-12",
        "all",
    )
    assert period_end("day", dec) == calendar.timegm((2027, 1, 1, 0, 0, 0))
    assert period_end("month", dec) == calendar.timegm((2027, 1, 1, 0, 0, 0))
    assert period_end("month", LATE) == calendar.timegm((2026, 12, 1, 0, 0, 0))
    assert period_end("total", dec) is None


def test_a_soft_limit_alerts_once_when_crossed(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    b = budget(store_url, {"per": "workflow", "period": "month", "currency": 1.0, "soft": 0.8})

    def spend(calls: int) -> None:
        for _ in range(calls):
            reserved = b.reserve(0.1, 0, ttl=600)
            assert reserved is not None
            b.settle(reserved, 0.1, 0)

    with caplog.at_level(logging.WARNING, logger="relayflow.budget"):
        spend(7)
        assert caplog.records == []
        spend(3)  # 0.8 crosses the soft limit; 0.9 and 1.0 are past it already
    [record] = caplog.records
    assert "spent 0.80 of 1.00 (80%), past the soft limit of 80%" in record.getMessage()
    [alert] = alerts(store_url)
    assert (alert.kind, alert.period, alert.span, alert.count) == (
        "soft currency",
        "month",
        "2026-11",
        1,
    )


def test_a_limit_that_is_not_hard_alerts_at_its_amount_and_never_refuses(store_url: str) -> None:
    b = budget(store_url, {"per": "workflow", "currency": 0.02, "hard": False})
    for _ in range(4):
        reserved = b.reserve(0.01, 0, ttl=600)
        assert reserved is not None
        b.settle(reserved, 0.01, 0)
    [alert] = alerts(store_url)
    assert alert.kind == "soft currency" and "spent 0.02 of 0.02 (100%)" in alert.message
    assert b.ledger.totals(WF)[0].calls == 4


def test_a_token_limit_counts_the_worst_case_then_the_real_tokens(store_url: str) -> None:
    b = budget(store_url, {"per": "workflow", "period": "day", "tokens": 1000})
    reserved = b.reserve(0.0, 900, ttl=600)
    assert reserved is not None
    with pytest.raises(BudgetExceeded, match=r"limit 1,000 tokens, spent 0 tokens \+ in flight"):
        b.reserve(0.0, 200, ttl=600)
    b.settle(reserved, 0.0, 120)  # the call used far fewer tokens than its worst case
    assert b.reserve(0.0, 800, ttl=600) is not None


def test_the_worst_case_of_a_request_bounds_its_tokens() -> None:
    request = CompletionRequest("héllo", system="be brief", max_tokens=50, labels=["yes", "no"])
    input_tokens, output_tokens = worst_case_tokens(request)
    # every token is at least one byte of text; the template may add a few more
    assert input_tokens >= len("héllo".encode()) + len("be brief") + len("yesno")
    assert output_tokens == 50
    assert worst_case_tokens(CompletionRequest("x", max_tokens=1, labels=["a" * 9]))[1] == 10


def test_team_and_token_limits_apply_to_runs_submitted_with_a_token(store_url: str) -> None:
    b = budget(
        store_url,
        {"per": "team", "period": "month", "currency": 0.02},
        {"per": "token", "period": "day", "currency": 0.01},
    )
    # a run started from the command line has no principal: neither limit applies
    assert b.reserve(1.0, 0, ttl=600) is None
    alice = current_principal.set(Principal("tok-a", "alice", "fraud-team"))
    try:
        reserved = b.reserve(0.01, 0, ttl=600)
        assert reserved is not None
        b.settle(reserved, 0.01, 0)
        with pytest.raises(BudgetExceeded, match=r"budget token 'tok-a' per day"):
            b.reserve(0.01, 0, ttl=600)
    finally:
        current_principal.reset(alice)
    bob = current_principal.set(Principal("tok-b", "bob", "fraud-team"))
    try:
        reserved = b.reserve(0.01, 0, ttl=600)  # bob's own token budget, the team's last cent
        assert reserved is not None
        b.settle(reserved, 0.01, 0)
        with pytest.raises(BudgetExceeded, match=r"budget team 'fraud-team' per month"):
            b.reserve(0.01, 0, ttl=600)
    finally:
        current_principal.reset(bob)


def test_two_processes_never_spend_more_than_the_budget(tmp_path: Path) -> None:
    """Each process takes calls of 0.001 until it is refused; together they take exactly the
    1,000 calls that the limit of 1.00 allows."""
    url = f"sqlite:///{tmp_path}/runs.db"
    script = textwrap.dedent(
        f"""
        from relayflow.errors import BudgetExceeded
        from relayflow.govern.budget import Budget
        from relayflow.govern.ledger import Ledger
        from relayflow.schema.file import BudgetSpec

        spec = BudgetSpec.model_validate(
            {{"limits": [{{"per": "workflow", "period": "total", "currency": 1.0}}]}}
        )
        budget = Budget(spec, "shared", Ledger({url!r}))
        calls = 0
        while True:
            try:
                reserved = budget.reserve(0.001, 0, 600)
            except BudgetExceeded:
                break
            budget.settle(reserved, 0.001, 0)
            calls += 1
        print(calls)
        """
    )
    Ledger(url)  # create the tables before both start
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    counts = [int(p.communicate(timeout=240)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(counts) == 1000
    spent, held = Ledger(url).totals(Counter("workflow", "shared", "total", "all"))
    assert (spent.cost_nanos, spent.calls, held.calls) == (NANOS, 1000, 0)
