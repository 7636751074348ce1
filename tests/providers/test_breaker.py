"""CircuitBreaker: the closed → open → half-open → closed/open state machine on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from relayflow.errors import CircuitOpen, ProviderError, ProviderTimeout
from relayflow.providers.breaker import CircuitBreaker, breaker_for, reset_breakers


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def ok() -> str:
    return "ok"


async def boom() -> str:
    raise ProviderError("backend down")


def test_opens_after_threshold_consecutive_failures() -> None:
    clock = Clock()
    breaker = CircuitBreaker("m", failure_threshold=3, reset_timeout=10, clock=clock)
    assert breaker.state == "closed"
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow() and breaker.failures == 2
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_after == pytest.approx(10.0)


def test_a_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker("m", failure_threshold=2, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed" and breaker.failures == 1


def test_half_open_allows_exactly_one_trial_then_closes_on_success() -> None:
    clock = Clock()
    breaker = CircuitBreaker("m", failure_threshold=1, reset_timeout=30, clock=clock)
    breaker.record_failure()
    clock.now += 29.9
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 0.1
    assert breaker.state == "half_open" and breaker.retry_after == 0.0
    assert breaker.allow()
    assert not breaker.allow()  # the trial is in flight: nobody else
    assert breaker.state == "half_open"
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow() and breaker.failures == 0


def test_a_failed_trial_opens_again_for_a_full_timeout() -> None:
    clock = Clock()
    breaker = CircuitBreaker("m", failure_threshold=5, reset_timeout=30, clock=clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 30
    assert breaker.allow()
    breaker.record_failure()  # one failure suffices in half-open, below the threshold of 5
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 29
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


def test_call_refuses_with_circuit_open_without_calling() -> None:
    clock = Clock()
    breaker = CircuitBreaker("llm", failure_threshold=2, reset_timeout=5, clock=clock)
    calls = 0

    async def counted() -> str:
        nonlocal calls
        calls += 1
        raise ProviderTimeout("slow")

    for _ in range(2):
        with pytest.raises(ProviderTimeout):
            asyncio.run(breaker.call(counted))
    with pytest.raises(CircuitOpen, match="'llm' is open after 2") as info:
        asyncio.run(breaker.call(counted))
    assert calls == 2
    assert isinstance(info.value, ProviderError) and info.value.retry_after == pytest.approx(5.0)
    clock.now += 5
    assert asyncio.run(breaker.call(ok)) == "ok"
    assert breaker.state == "closed"


def test_call_honours_is_failure() -> None:
    breaker = CircuitBreaker(
        "svc",
        failure_threshold=1,
        clock=Clock(),
        is_failure=lambda exc: not isinstance(exc, ValueError),
    )

    async def bad_request() -> str:
        raise ValueError("422")

    with pytest.raises(ValueError):
        asyncio.run(breaker.call(bad_request))
    assert breaker.state == "closed"
    with pytest.raises(ProviderError):
        asyncio.run(breaker.call(boom))
    assert breaker.state == "open"


def test_a_cancelled_trial_gives_the_trial_back() -> None:
    clock = Clock()
    breaker = CircuitBreaker("m", failure_threshold=1, reset_timeout=1, clock=clock)
    breaker.record_failure()
    clock.now += 1

    async def main() -> None:
        task = asyncio.create_task(breaker.call(asyncio.Event().wait))
        await asyncio.sleep(0)
        assert not breaker.allow()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert breaker.state == "half_open" and breaker.allow()


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("m", failure_threshold=0)
    with pytest.raises(ValueError, match="reset_timeout"):
        CircuitBreaker("m", reset_timeout=-1)


def test_breaker_for_is_one_per_name_per_process() -> None:
    reset_breakers()
    try:
        a = breaker_for("fast", failure_threshold=2, reset_timeout=3)
        assert breaker_for("fast", failure_threshold=4, reset_timeout=6) is a
        assert (a.failure_threshold, a.reset_timeout) == (4, 6)
        assert breaker_for("slow") is not a
    finally:
        reset_breakers()
    assert breaker_for("fast") is not a
