"""A model endpoint that fails: the step is retried, then the run fails with a clear message,
and the steps that finished before it stay finished. The endpoint is a real HTTP server on
loopback that misbehaves on purpose."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import relayflow
from tests.engine.helpers import INCREMENT, Endpoint, write_workflow


def _workflow(folder: Path, url: str, attempts: int) -> relayflow.Workflow:
    return write_workflow(
        folder,
        "models:\n"
        "  remote:\n"
        "    provider: openai\n"
        "    model: fake\n"
        f"    base_url: {url}\n"
        "    timeout: 0.5\n"
        "    max_retries: 0\n"
        "    params: {logprobs: false}\n"
        "workflow:\n"
        "  - {name: prepare, type: transform, script: inc.py}\n"
        "  - name: ask\n"
        "    type: inference\n"
        "    model: remote\n"
        "    prompt: 'Say something about {{ n }}'\n"
        f"    retry: {{attempts: {attempts}, backoff: 0.01}}\n",
        {"inc.py": INCREMENT},
    )


@pytest.mark.parametrize(
    ("failure", "message"),
    [(500, "500"), ("garbage", "ProviderError"), ("hang", "ProviderTimeout")],
)
def test_failures_are_retried_then_fail_the_run_keeping_finished_steps(
    tmp_path: Path, endpoint: Endpoint, failure: object, message: str
) -> None:
    endpoint.script = [failure] * 3
    wf = _workflow(tmp_path, endpoint.url, attempts=3)

    async def main() -> None:
        async with relayflow.Runner(wf, store=str(tmp_path / "runs.db")) as runner:
            result = await runner.run({"n": 1})
            assert result.status == "failed"
            assert result.step == "ask"
            assert result.error is not None and message in result.error
            assert "\n" not in result.error
            assert runner.store is not None
            steps = {s.step: s for s in runner.store.steps(result.run_id)}
            assert steps["prepare"].status == "finished"
            assert steps["prepare"].output == {"n": 2}
            assert (steps["ask"].status, steps["ask"].attempt) == ("failed", 3)

    asyncio.run(main())
    assert endpoint.calls == 3


def test_a_transient_failure_is_absorbed_by_a_retry(tmp_path: Path, endpoint: Endpoint) -> None:
    endpoint.script = [503, "garbage"]
    wf = _workflow(tmp_path, endpoint.url, attempts=3)

    async def main() -> relayflow.RunResult:
        async with relayflow.Runner(wf) as runner:
            return await runner.run({"n": 1})

    result = asyncio.run(main())
    assert result.status == "succeeded"
    assert result.output is not None and result.output["output"] == "fine"
    assert endpoint.calls == 3
