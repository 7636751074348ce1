"""Steps the runner calls inline (sync `run_in: inline` and `async def` transforms on a linear
plan): the fast path must behave exactly like the general one for retries, failures, events
and verdicts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import relayflow
from relayflow.core import events as ev
from tests.engine.helpers import write_workflow

FLAKY = """
calls = 0

def transform(record):
    global calls
    calls += 1
    if calls == 1:
        raise ValueError("first call fails")
    return {**record, "calls": calls}
"""

ASYNC_BOOM = """
import asyncio

async def transform(record):
    await asyncio.sleep(0)
    raise KeyError("missing")
"""

NOT_A_DICT = """
def transform(record):
    return [1, 2]
"""


class Recorder:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def handle(self, event: ev.Event) -> None:
        self.events.append(event)


def one_step(tmp_path: Path, script: str, extra: str = "") -> relayflow.Workflow:
    return write_workflow(
        tmp_path,
        f"workflow:\n  - {{name: Step, type: transform, script: step.py, run_in: inline{extra}}}\n",
        {"step.py": script},
    )


def run(wf: relayflow.Workflow, *consumers: Recorder) -> relayflow.RunResult:
    async def main() -> relayflow.RunResult:
        async with relayflow.Runner(wf, consumers=list(consumers)) as runner:
            return await runner.run({"n": 1})

    return asyncio.run(main())


def test_an_inline_step_that_raises_is_retried_by_the_general_path(tmp_path: Path) -> None:
    wf = one_step(tmp_path, FLAKY, ", retry: {attempts: 2, backoff: 0}")
    recorder = Recorder()
    result = run(wf, recorder)
    assert result.status == "succeeded" and result.output == {"n": 1, "calls": 2}
    failed = [e for e in recorder.events if isinstance(e, ev.StepFailed)]
    finished = [e for e in recorder.events if isinstance(e, ev.StepFinished)]
    assert [(e.attempt, e.will_retry) for e in failed] == [(1, True)]
    assert "step.py: transform() raised ValueError: first call fails" in failed[0].error
    assert [e.attempt for e in finished] == [2]


def test_an_inline_step_without_listeners_fails_the_run_with_the_scripts_error(
    tmp_path: Path,
) -> None:
    result = run(one_step(tmp_path, FLAKY))  # one attempt, nobody listening
    assert result.status == "failed" and result.step == "Step"
    assert result.error == (
        "Step: AgentError: step.py: transform() raised ValueError: first call fails"
    )


def test_an_async_transform_that_raises_names_its_script(tmp_path: Path) -> None:
    result = run(one_step(tmp_path, ASYNC_BOOM))
    assert result.status == "failed"
    assert "step.py: transform() raised KeyError: 'missing'" in (result.error or "")


def test_a_result_that_is_not_a_dict_fails_with_a_clear_error(tmp_path: Path) -> None:
    result = run(one_step(tmp_path, NOT_A_DICT))
    assert result.status == "failed"
    assert "returned list, not a dict — return the new record as a dict" in (result.error or "")


def test_listeners_see_the_same_events_for_an_inline_step(tmp_path: Path) -> None:
    wf = write_workflow(
        tmp_path,
        "workflow:\n"
        "  - {name: A, type: transform, script: inc.py, run_in: inline}\n"
        "  - {name: B, type: transform, script: inc.py, run_in: inline}\n",
        {"inc.py": "def transform(record):\n    return {**record, 'n': record['n'] + 1}\n"},
    )
    recorder = Recorder()
    result = run(wf, recorder)
    assert result.output == {"n": 3}
    kinds = [(type(e).__name__, getattr(e, "step", None)) for e in recorder.events]
    assert kinds == [
        ("RunStarted", None),
        ("StepStarted", "A"),
        ("StepFinished", "A"),
        ("StepStarted", "B"),
        ("StepFinished", "B"),
        ("RunFinished", None),
    ]
    finished = [e for e in recorder.events if isinstance(e, ev.StepFinished)]
    assert [e.output for e in finished] == [{"n": 2}, {"n": 3}]
    assert all(e.versions.get("script") for e in finished)
