"""Budgets and rate limits around every model call of a workflow.

Before a call: wait for the endpoint's rate limit, then reserve the call's worst-case cost and
tokens on every counter of the workflow's ``budget.limits`` that applies (the workflow; the
team and the API token of the run's principal, when a server runs it on a token's behalf).
A hard limit the reservation would pass raises ``BudgetExceeded``, which fails the step at
once, without retries. After the call the hold is settled to what it really cost; a call that
failed before the model ran releases it. Crossing a soft limit (and every refusal) is an alert:
a row in ``budget_alerts`` (``relayflow costs`` shows them), a log warning on the
``relayflow.budget`` logger, and a ``BudgetAlert`` event on the runner's stream (the server's
Prometheus metrics count them: ``relayflow_budget_alerts_total``,
``relayflow_budget_refusals_total``).
"""

from __future__ import annotations

import asyncio
import calendar
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from relayflow.core.events import BudgetAlert
from relayflow.core.money import money
from relayflow.errors import BudgetExceeded, ProviderTimeout
from relayflow.govern.ledger import NANOS, Cap, Counter, Hold, Ledger, Over, Totals, to_nanos
from relayflow.govern.principal import current_principal
from relayflow.govern.ratelimit import RateLimiter, estimate_tokens, rate_limiter
from relayflow.providers.base import Completion, CompletionRequest, Prediction, Price, Provider
from relayflow.providers.registry import provider_config
from relayflow.schema.file import BudgetLimit, BudgetSpec, ModelSpec
from relayflow.scrub import get_logger

if TYPE_CHECKING:
    from relayflow.schema.workflow import Workflow


class GuardContext(Protocol):
    """What a guard needs of the step it guards (agents/base.py's BuildContext is one): the
    workflow (its budget and models), the store that keeps the ledger, the event stream."""

    @property
    def workflow(self) -> Workflow | None: ...

    @property
    def store_url(self) -> str | None: ...

    @property
    def emit(self) -> Callable[[Any], object] | None: ...


log = get_logger("relayflow.budget")

#: tokens a chat template and the label instructions may add to a prompt (the worst case)
PROMPT_OVERHEAD_TOKENS = 64


# ---- the worst case of one call --------------------------------------------------------------


def worst_case_tokens(request: CompletionRequest) -> tuple[int, int]:
    """Input and output tokens that ``request`` cannot exceed: no tokenizer makes more tokens
    than the text has UTF-8 bytes, plus the template's overhead; at most ``max_tokens`` out
    (a labels call scores each label's tokens instead, when that is more)."""
    text = (request.system or "") + request.prompt
    labels = list(request.labels or ())
    extra = "".join(labels)
    if request.json_schema is not None:
        extra += json.dumps(request.json_schema)
    input_tokens = len(text.encode()) + len(extra.encode()) + PROMPT_OVERHEAD_TOKENS
    output_tokens = max(request.max_tokens, sum(len(label.encode()) + 1 for label in labels))
    return input_tokens, output_tokens


# ---- periods ---------------------------------------------------------------------------------


def span_of(period: str, now: float) -> str:
    """The period that ``now`` falls in (UTC): ``2026-11-25``, ``2026-11`` or ``all``."""
    if period == "total":
        return "all"
    return time.strftime("%Y-%m-%d" if period == "day" else "%Y-%m", time.gmtime(now))


def period_end(period: str, now: float) -> float | None:
    """When the period that ``now`` falls in ends (UTC); None for ``total``."""
    t = time.gmtime(now)
    if period == "day":
        return calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) + 86400.0
    if period == "month":
        year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
        return float(calendar.timegm((year, month, 1, 0, 0, 0)))
    return None


def amount(measure: str, value: int) -> str:
    """A ledger amount (nano-units of currency, or tokens) as a budget message writes it."""
    return money(value / NANOS, symbol="") if measure == "currency" else f"{value:,} tokens"


# ---- metrics ---------------------------------------------------------------------------------


# ---- a workflow's budget ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bound:
    """One limit of the YAML, with its counter now."""

    index: int
    limit: BudgetLimit
    counter: Counter


class Budget:
    """The ``budget:`` limits of one workflow, kept in ``ledger``."""

    #: a hold of a process that died stops counting after this long (seconds), at least
    MIN_HOLD_SECONDS = 600.0

    def __init__(
        self,
        spec: BudgetSpec,
        workflow: str,
        ledger: Ledger,
        emit: Callable[[BudgetAlert], object] | None = None,
    ) -> None:
        self.spec = spec
        self.workflow = workflow
        self.ledger = ledger
        self._emit = emit

    def _alert(
        self, counter: Counter, kind: Literal["soft", "hard"], detail: str, message: str
    ) -> None:
        """Record an alert once per counter, period and kind (a row and a log warning), and
        tell the event stream (the server's metrics count them) each time."""
        first = self.ledger.alert(counter, f"{kind} {detail}", self.workflow, message)
        if first:
            log.warning("%s", message)
        if self._emit is not None:
            self._emit(
                BudgetAlert(
                    workflow=self.workflow,
                    scope=counter.scope,
                    subject=counter.subject,
                    period=counter.period,
                    span=counter.span,
                    kind=kind,
                    message=message,
                    first=first,
                    ts=self.ledger.clock(),
                )
            )

    def _bound(self, now: float) -> list[_Bound]:
        """The limits that apply to the calling run, with their counters for ``now``."""
        principal = current_principal.get()
        out = []
        for index, limit in enumerate(self.spec.limits):
            if limit.per == "workflow":
                subject: str | None = self.workflow
            elif principal is None:
                subject = None  # a run nobody submitted with a token (the CLI)
            else:
                subject = principal.team if limit.per == "team" else principal.token_id
            if subject is not None:
                counter = Counter(limit.per, subject, limit.period, span_of(limit.period, now))
                out.append(_Bound(index, limit, counter))
        return out

    def reserve(self, cost: float, tokens: int, ttl: float) -> tuple[Hold, list[_Bound]] | None:
        """Hold a call's worst case on every applicable counter; None when no limit applies.
        Raises BudgetExceeded when a hard limit would be passed."""
        now = self.ledger.clock()
        bound = self._bound(now)
        if not bound:
            return None
        hard = [b for b in bound if b.limit.hard]
        caps = [
            Cap(
                b.counter,
                None if b.limit.currency is None else to_nanos(b.limit.currency),
                b.limit.tokens,
            )
            for b in hard
        ]
        result = self.ledger.reserve(
            caps,
            [b.counter for b in bound],
            to_nanos(cost),
            tokens,
            max(ttl, self.MIN_HOLD_SECONDS),
        )
        if isinstance(result, Over):
            self._refused(hard[result.cap], result, now)
        assert isinstance(result, Hold)  # noqa: S101 - invariant: reserve answers Hold or Over
        return result, bound

    def _refused(self, bound: _Bound, over: Over, now: float) -> None:
        limit, counter = bound.limit, bound.counter
        field = f"budget.limits[{bound.index}].{over.measure}"
        end = period_end(limit.period, now)
        when = (
            f" or wait until {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(end))}"
            if end is not None
            else ""
        )
        held = f" + in flight {amount(over.measure, over.held)}" if over.held else ""
        message = (
            f"budget {limit.per} {counter.subject!r} per {limit.period} ({counter.span}): "
            f"limit {amount(over.measure, over.limit)}, spent {amount(over.measure, over.spent)}"
            f"{held} + this call {amount(over.measure, over.asked)} (worst case) would pass "
            f"it — raise {field}{when}"
        )
        self._alert(counter, "hard", over.measure, message)
        raise BudgetExceeded(message)

    def settle(self, reserved: tuple[Hold, list[_Bound]], cost: float, tokens: int) -> None:
        """Charge what the call cost; alert on each soft limit it crossed."""
        hold, bound = reserved
        cost_nanos = to_nanos(cost)
        after = self.ledger.settle(hold, cost_nanos, tokens)
        for b in bound:
            totals = after.get(b.counter)
            if totals is not None:
                self._soft(b, totals, cost_nanos, tokens)

    def _soft(self, b: _Bound, totals: Totals, cost_nanos: int, tokens: int) -> None:
        limit = b.limit
        share = limit.soft if limit.soft is not None else (None if limit.hard else 1.0)
        if share is None:
            return
        for measure, cap, total, added in (
            ("currency", limit.currency, totals.cost_nanos, cost_nanos),
            ("tokens", limit.tokens, totals.tokens, tokens),
        ):
            if cap is None:
                continue
            cap_units = to_nanos(cap) if measure == "currency" else int(cap)
            threshold = share * cap_units
            if not total - added < threshold <= total:
                continue
            message = (
                f"budget {limit.per} {b.counter.subject!r} per {limit.period} "
                f"({b.counter.span}): spent {amount(measure, total)} of "
                f"{amount(measure, cap_units)} ({total / cap_units:.0%}), past the soft limit "
                f"of {share:.0%} (budget.limits[{b.index}].soft)"
            )
            self._alert(b.counter, "soft", measure, message)

    def release(self, reserved: tuple[Hold, list[_Bound]]) -> None:
        self.ledger.release(reserved[0])


# ---- the provider wrapper --------------------------------------------------------------------


class GuardedProvider:
    """A provider whose calls wait for the rate limit and are paid for from the budget."""

    def __init__(
        self,
        inner: Provider,
        budget: Budget | None,
        limiter: RateLimiter | None,
        hold_seconds: float,
    ) -> None:
        self.inner = inner
        self.name: str = inner.name
        self.version: str = inner.version
        self.price: Price = inner.price
        self.budget = budget
        self.limiter = limiter
        self.hold_seconds = hold_seconds

    async def complete(self, request: CompletionRequest) -> Completion:
        if self.limiter is not None:
            text = (request.system or "") + request.prompt
            await self.limiter.wait(estimate_tokens(text, request.max_tokens))
        if self.budget is None:
            return await self.inner.complete(request)
        input_tokens, output_tokens = worst_case_tokens(request)
        worst = self.price.cost(input_tokens, output_tokens)
        reserved = self.budget.reserve(worst, input_tokens + output_tokens, self.hold_seconds)
        if reserved is None:
            return await self.inner.complete(request)
        try:
            completion = await self.inner.complete(request)
        except (ProviderTimeout, asyncio.CancelledError):
            # the endpoint may have done (and billed) the work: count the worst case
            self.budget.settle(reserved, worst, input_tokens + output_tokens)
            raise
        except BaseException:
            self.budget.release(reserved)
            raise
        used = completion.input_tokens, completion.output_tokens
        self.budget.settle(reserved, self.price.cost(*used), sum(used))
        return completion

    async def predict(self, features: Mapping[str, Any]) -> Prediction:
        if self.limiter is not None:
            await self.limiter.wait(0)
        if self.budget is None:
            return await self.inner.predict(features)
        cost = self.price.cost(0, 0)
        reserved = self.budget.reserve(cost, 0, self.hold_seconds)
        if reserved is None:
            return await self.inner.predict(features)
        try:
            prediction = await self.inner.predict(features)
        except BaseException:
            self.budget.release(reserved)
            raise
        self.budget.settle(reserved, cost, 0)
        return prediction

    async def close(self) -> None:
        await self.inner.close()


class Guard:
    """What an inference step wraps its provider in: the workflow's budget and the rate limit
    of the model's endpoint (either may be absent)."""

    def __init__(self, budget: Budget | None, limiter: RateLimiter | None, spec: ModelSpec):
        self.budget = budget
        self.limiter = limiter
        # a call (with the client's own retries) is over by then; its hold may lapse after
        self.hold_seconds = spec.timeout * (spec.max_retries + 1) * 2
        self._last: GuardedProvider | None = None

    def wrap(self, provider: Provider) -> Provider:
        last = self._last
        if last is None or last.inner is not provider:
            last = self._last = GuardedProvider(
                provider, self.budget, self.limiter, self.hold_seconds
            )
        return last


def _endpoint(alias: str, spec: ModelSpec, base_dir: str) -> tuple[str, ...]:
    """What one rate limit is shared by: the same endpoint and model, whatever the alias."""
    return spec.rate_key(alias, base_dir)


def guard_for(ctx: GuardContext, alias: str) -> Guard | None:
    """The guard of the model ``alias`` in the context's workflow; None when the workflow has
    no budget and the model no rate limit (nothing is added to its calls)."""
    workflow = ctx.workflow
    if workflow is None:
        return None
    wf_spec = workflow.spec
    spec = wf_spec.models.get(alias) or provider_config({})
    budget = None
    if wf_spec.budget is not None and wf_spec.budget.limits:
        budget = Budget(wf_spec.budget, workflow.name, Ledger(ctx.store_url), ctx.emit)
    limiter = None
    if spec.rate_limit is not None:
        limiter = rate_limiter(_endpoint(alias, spec, str(workflow.base_dir)), spec.rate_limit)
    if budget is None and limiter is None:
        return None
    return Guard(budget, limiter, spec)
