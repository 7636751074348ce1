"""Budgets around whole runs: a hundred concurrent runs against a budget of ten calls, a real
model endpoint over HTTP under a token budget, and the `budget:` section's validation."""

from __future__ import annotations

import asyncio
from collections import Counter as Tally
from collections.abc import Iterator
from pathlib import Path

import pytest

import relayflow
from relayflow.core import events as ev
from relayflow.errors import SpecError
from relayflow.govern.budget import span_of
from relayflow.govern.ledger import NANOS, Counter, Ledger, close_ledgers
from relayflow.observe.metrics import PrometheusMetrics
from relayflow.store.sql_store import SqlStore
from tests.engine.helpers import Endpoint
from tests.govern.budget_support import scoring_workflow


@pytest.fixture(autouse=True)
def _fresh_engines() -> Iterator[None]:
    yield
    close_ledgers()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.server.shutdown()
    server.server.server_close()


def today(period: str = "day") -> str:
    import time

    return span_of(period, time.time())


DAY = {"scope": "workflow", "period": "day"}


def test_a_hundred_concurrent_runs_never_pass_a_budget_of_ten_calls(
    tmp_path: Path, store_url: str
) -> None:
    wf = scoring_workflow(tmp_path, "{per: workflow, period: day, currency: 0.10, soft: 0.5}")

    alerts: list[ev.BudgetAlert] = []
    metrics = PrometheusMetrics()

    class Alerts:
        def handle(self, event: ev.Event) -> None:
            if isinstance(event, ev.BudgetAlert):
                alerts.append(event)

    async def main() -> list[relayflow.RunResult]:
        consumers: list[ev.Consumer] = [Alerts(), metrics]
        async with relayflow.Runner(wf, store=store_url, consumers=consumers) as runner:
            return await asyncio.gather(
                *(runner.run({"amount": i / 100, "age": 0.5}) for i in range(100))
            )

    results = asyncio.run(main())
    assert Tally(r.status for r in results) == {"succeeded": 10, "failed": 90}
    # the event stream hears of every refusal and of the soft limit's crossing, once each
    assert Tally((a.kind, a.first) for a in alerts) == {
        ("soft", True): 1,
        ("hard", True): 1,
        ("hard", False): 89,
    }
    assert {(a.workflow, a.scope, a.subject, a.period) for a in alerts} == {
        ("scoring", "workflow", "scoring", "day")
    }
    sample = metrics.registry.get_sample_value
    assert sample("relayflow_budget_refusals_total", {**DAY, "workflow": "scoring"}) == 90
    assert sample("relayflow_budget_alerts_total", {**DAY, "kind": "soft"}) == 1
    assert sample("relayflow_budget_alerts_total", {**DAY, "kind": "hard"}) == 1
    refused = [r for r in results if r.status == "failed"]
    assert all(r.step == "Score" for r in refused)
    assert all(
        r.error and r.error.startswith("BudgetExceeded: budget workflow 'scoring'") for r in refused
    )
    assert all("raise budget.limits[0].currency" in (r.error or "") for r in refused)
    ledger = Ledger(store_url)
    spent, held = ledger.totals(Counter("workflow", "scoring", "day", today()))
    assert (spent.cost_nanos, spent.calls, held.calls) == (NANOS // 10, 10, 0)
    store = SqlStore(store_url)
    try:
        # the runs' own record of their cost agrees: ten calls of a cent
        assert sum(s.cost for s in store.spend()) == pytest.approx(0.10)
        kinds = {a.kind: a.count for a in store.budget_alerts()}
    finally:
        store.close()
    assert kinds == {"hard currency": 90, "soft currency": 1}


def test_a_run_after_the_budget_is_spent_fails_at_once_without_retries(tmp_path: Path) -> None:
    wf = scoring_workflow(tmp_path, "{per: workflow, period: month, currency: 0.01}")
    store = f"sqlite:///{tmp_path}/runs.db"

    async def main() -> tuple[relayflow.RunResult, relayflow.RunResult]:
        async with relayflow.Runner(wf, store=store) as runner:
            return await runner.run({"amount": 0.1, "age": 0.1}), await runner.run(
                {"amount": 0.2, "age": 0.2}
            )

    first, second = asyncio.run(main())
    assert first.status == "succeeded"
    assert second.status == "failed" and "BudgetExceeded" in (second.error or "")
    reader = SqlStore(store)
    try:
        [step] = reader.steps(second.run_id)
    finally:
        reader.close()
    assert (step.status, step.attempt) == ("failed", 1)


def _remote(folder: Path, url: str, limits: str) -> relayflow.Workflow:
    path = folder / "workflow.yaml"
    path.write_text(
        "name: remote\n"
        "models:\n"
        "  remote:\n"
        "    provider: openai\n"
        "    model: fake\n"
        f"    base_url: {url}\n"
        "    timeout: 2\n"
        "    max_retries: 0\n"
        "    price: {input_per_1m: 1000, output_per_1m: 2000}\n"
        "    params: {logprobs: false}\n"
        "budget:\n"
        "  limits:\n"
        f"    - {limits}\n"
        "workflow:\n"
        "  - name: ask\n"
        "    type: inference\n"
        "    model: remote\n"
        "    prompt: 'Say something about {{ n }}'\n"
        "    max_tokens: 20\n"
        "    cache: false\n"
    )
    return relayflow.load_workflow(path)


def test_an_http_model_is_charged_its_real_tokens_and_a_failed_call_costs_nothing(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    # the endpoint answers with 5 prompt + 1 completion tokens; the worst case of a call is
    # the prompt's bytes + the template's overhead + max_tokens (about 110): the limit admits
    # one call in flight at a time, and the settled calls leave room for more
    wf = _remote(tmp_path, endpoint.url, "{per: workflow, period: day, tokens: 130}")
    store = f"sqlite:///{tmp_path}/runs.db"
    endpoint.script = [200, 500, 200]

    async def main() -> list[relayflow.RunResult]:
        async with relayflow.Runner(wf, store=store) as runner:
            return [await runner.run({"n": n}) for n in range(3)]

    ok, broken, again = asyncio.run(main())
    assert (ok.status, broken.status, again.status) == ("succeeded", "failed", "succeeded")
    assert "BudgetExceeded" not in (broken.error or "")
    spent, held = Ledger(store).totals(Counter("workflow", "remote", "day", today()))
    # two answered calls of 6 tokens; the failed call's hold was given back
    assert (spent.tokens, spent.calls, held.calls) == (12, 2, 0)
    assert spent.cost_nanos == 2 * (5 * 1000 + 1 * 2000) * NANOS // 1_000_000


def test_an_http_call_whose_worst_case_does_not_fit_is_never_sent(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    wf = _remote(tmp_path, endpoint.url, "{per: workflow, period: day, tokens: 50}")

    async def main() -> relayflow.RunResult:
        async with relayflow.Runner(wf, store=f"sqlite:///{tmp_path}/runs.db") as runner:
            return await runner.run({"n": 1})

    result = asyncio.run(main())
    assert result.status == "failed"
    assert "limit 50 tokens, spent 0 tokens + this call" in (result.error or "")
    assert endpoint.calls == 0


@pytest.mark.parametrize(
    ("limit", "problem"),
    [
        (
            "{per: team, period: month}",
            "6: budget.limits[1]: the limit has no amount — add `currency: 5.00` (in the "
            "prices' unit) or `tokens: 100000`, or both",
        ),
        (
            "{per: planet, tokens: 5}",
            "6: budget.limits[1].per: 'planet' is not allowed — use one of 'workflow', 'team' "
            "or 'token'",
        ),
        (
            "{per: token, currency: 1, soft: 1.5}",
            "6: budget.limits[1].soft: input should be less than or equal to 1 (got 1.5) — fix "
            "the value's type or range",
        ),
    ],
)
def test_a_bad_limit_is_one_problem_at_its_line(tmp_path: Path, limit: str, problem: str) -> None:
    path = tmp_path / "workflow.yaml"
    path.write_text(
        "workflow:\n"
        "  - {name: a, type: transform, script: t.py}\n"
        "budget:\n"
        "  limits:\n"
        "    - {per: workflow, period: day, currency: 1}\n"
        f"    - {limit}\n"
    )
    (tmp_path / "t.py").write_text("def transform(r):\n    return r\n")
    with pytest.raises(SpecError) as info:
        relayflow.load_workflow(path)
    assert [str(p) for p in info.value.problems] == [f"{path}:{problem}"]


def test_a_rate_limit_is_validated_under_models(tmp_path: Path) -> None:
    path = tmp_path / "workflow.yaml"
    path.write_text(
        "models:\n"
        "  m: {provider: openai, model: x, rate_limit: {requests_per_minute: 0}}\n"
        "workflow:\n"
        "  - {name: a, type: inference, model: m, prompt: hi}\n"
    )
    with pytest.raises(SpecError) as info:
        relayflow.load_workflow(path)
    [problem] = info.value.problems
    assert (problem.line, problem.field) == (2, "models.m.rate_limit.requests_per_minute")
