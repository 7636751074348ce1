"""Rate limits: a call over the rate waits (never fails), tokens weigh by their count, and every
workflow in the process that calls one endpoint shares its limiter."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import relayflow
from relayflow.agents.base import BuildContext
from relayflow.govern.budget import guard_for
from relayflow.govern.ratelimit import RateLimiter, estimate_tokens, rate_limiter
from relayflow.providers.base import Provider, RateLimitSpec
from tests.engine.helpers import Endpoint


async def _pending(awaitable: asyncio.Future[Any]) -> bool:
    """Whether ``awaitable`` is still waiting after the loop had time to run it."""
    for _ in range(20):
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    return not awaitable.done()


def _no_provider(alias: str) -> Provider:
    raise AssertionError(f"the guard asked for provider {alias!r}")


def test_a_call_over_the_request_rate_waits_for_room() -> None:
    limiter = RateLimiter(RateLimitSpec(requests_per_minute=2))

    async def main() -> tuple[bool, bool]:
        first = asyncio.ensure_future(limiter.wait())
        second = asyncio.ensure_future(limiter.wait())
        third = asyncio.ensure_future(limiter.wait())
        ready = not await _pending(first) and not await _pending(second)
        waiting = await _pending(third)  # the bucket refills one call every 30 s
        third.cancel()
        return ready, waiting

    assert asyncio.run(main()) == (True, True)


def test_tokens_weigh_by_their_count_and_a_huge_call_still_goes() -> None:
    limiter = RateLimiter(RateLimitSpec(tokens_per_minute=1000))

    async def main() -> tuple[bool, bool, bool]:
        small = asyncio.ensure_future(limiter.wait(600))
        small_went = not await _pending(small)
        large = asyncio.ensure_future(limiter.wait(600))  # 1,200 > 1,000 a minute
        large_waits = await _pending(large)
        large.cancel()
        fresh = RateLimiter(RateLimitSpec(tokens_per_minute=1000))
        huge = asyncio.ensure_future(fresh.wait(50_000))  # more than a minute's worth
        huge_went = not await _pending(huge)
        return small_went, large_waits, huge_went

    assert asyncio.run(main()) == (True, True, True)


def test_each_event_loop_gets_its_own_buckets() -> None:
    limiter = RateLimiter(RateLimitSpec(requests_per_minute=1))

    async def once() -> bool:
        call = asyncio.ensure_future(limiter.wait())
        return not await _pending(call)

    # a second loop (a second asyncio.run) does not inherit the first loop's waiters
    assert asyncio.run(once()) and asyncio.run(once())


def test_the_estimate_counts_prompt_and_max_tokens() -> None:
    assert estimate_tokens("x" * 400, 100) == 201


def test_workflows_calling_one_endpoint_share_its_limiter(tmp_path: Path) -> None:
    spec = RateLimitSpec(requests_per_minute=60, tokens_per_minute=40_000)
    assert rate_limiter(("openai", "u", "m"), spec) is rate_limiter(("openai", "u", "m"), spec)
    assert rate_limiter(("openai", "u", "m"), spec) is not rate_limiter(("openai", "v", "m"), spec)
    guards = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "workflow.yaml").write_text(
            "models:\n"
            f"  {name}:\n"
            "    provider: openai\n"
            "    model: gpt-x\n"
            "    base_url: http://127.0.0.1:9/v1\n"
            "    rate_limit: {requests_per_minute: 60, tokens_per_minute: 40000}\n"
            "workflow:\n"
            f"  - {{name: ask, type: inference, model: {name}, prompt: hi}}\n"
        )
        wf = relayflow.load_workflow(folder / "workflow.yaml")
        ctx = BuildContext(wf.base_dir, wf.file, _no_provider, workflow=wf)
        guards.append(guard_for(ctx, name))
    one, two = guards
    assert one is not None and two is not None
    assert one.budget is None and one.limiter is two.limiter


def test_a_workflow_without_budget_or_rate_limit_adds_nothing(tmp_path: Path) -> None:
    (tmp_path / "workflow.yaml").write_text(
        "workflow:\n  - {name: ask, type: inference, model: gpt-5x, prompt: hi}\n"
    )
    wf = relayflow.load_workflow(tmp_path / "workflow.yaml")
    ctx = BuildContext(wf.base_dir, wf.file, _no_provider, workflow=wf)
    assert guard_for(ctx, "gpt-5x") is None


def test_a_run_over_the_rate_waits_before_its_call_reaches_the_endpoint(tmp_path: Path) -> None:
    endpoint = Endpoint()
    try:
        (tmp_path / "workflow.yaml").write_text(
            "models:\n"
            "  remote:\n"
            "    provider: openai\n"
            "    model: fake\n"
            f"    base_url: {endpoint.url}\n"
            "    params: {logprobs: false}\n"
            "    rate_limit: {requests_per_minute: 1}\n"
            "workflow:\n"
            "  - {name: ask, type: inference, model: remote, prompt: 'hi {{ n }}', cache: false}\n"
        )
        wf = relayflow.load_workflow(tmp_path / "workflow.yaml")

        async def main() -> tuple[str, bool, int]:
            async with relayflow.Runner(wf) as runner:
                first = await runner.run({"n": 1})
                second = asyncio.ensure_future(runner.run({"n": 2}))
                waiting = await _pending(second)
                second.cancel()
                return first.status, waiting, endpoint.calls

        assert asyncio.run(main()) == ("succeeded", True, 1)
    finally:
        endpoint.server.shutdown()
        endpoint.server.server_close()
