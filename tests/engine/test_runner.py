"""The runner over real transform scripts: order, joins, retries, timeouts, failures, review."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import relayflow
from relayflow.core import events as ev
from tests.engine.helpers import INCREMENT, write_workflow


class Recorder:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def handle(self, event: ev.Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


def test_linear_run_passes_the_handoff_and_emits_every_event(tmp_path: Path) -> None:
    wf = write_workflow(
        tmp_path,
        "workflow:\n"
        "  - {name: a, type: transform, script: inc.py, run_in: inline}\n"
        "  - {name: b, type: transform, script: inc.py}\n"
        "  - {name: c, type: transform, script: inc.py, run_in: thread}\n",
        {"inc.py": INCREMENT},
    )
    rec = Recorder()

    async def main() -> relayflow.RunResult:
        async with relayflow.Runner(wf, consumers=[rec]) as runner:
            return await runner.run({"n": 0})

    result = asyncio.run(main())
    assert result.status == "succeeded"
    assert result.output == {"n": 3}
    assert rec.kinds() == ["RunStarted"] + ["StepStarted", "StepFinished"] * 3 + ["RunFinished"]
    finished = [e for e in rec.events if isinstance(e, ev.StepFinished)]
    assert [e.step for e in finished] == ["a", "b", "c"]
    assert all(len(e.versions["script"]) == 12 for e in finished)


def test_independent_steps_run_concurrently_and_join(tmp_path: Path) -> None:
    slow = (
        "import asyncio\n"
        "async def transform(record):\n"
        "    await asyncio.sleep(0.2)\n"
        "    return {**record, KEY: True}\n"
    )
    wf = write_workflow(
        tmp_path,
        "workflow:\n"
        "  - {name: start, type: transform, script: inc.py}\n"
        "  - {name: left, type: transform, script: left.py, depends_on: start}\n"
        "  - {name: right, type: transform, script: right.py, depends_on: start}\n"
        "  - {name: join, type: transform, script: inc.py, depends_on: [left, right]}\n",
        {
            "inc.py": INCREMENT,
            "left.py": slow.replace("KEY", "'left'"),
            "right.py": slow.replace("KEY", "'right'"),
        },
    )
    rec = Recorder()

    async def main() -> relayflow.RunResult:
        async with relayflow.Runner(wf, consumers=[rec]) as runner:
            return await runner.run({"n": 0})

    result = asyncio.run(main())
    assert result.output == {"n": 2, "left": True, "right": True}
    order = [(type(e).__name__, getattr(e, "step", "")) for e in rec.events]
    # both branches start before either finishes: they overlap
    assert order.index(("StepStarted", "right")) < order.index(("StepFinished", "left"))


def test_retries_with_backoff_then_succeeds(tmp_path: Path) -> None:
    flaky = (
        "from pathlib import Path\n"
        f"COUNT = Path({str(tmp_path / 'count')!r})\n"
        "def transform(record):\n"
        "    n = int(COUNT.read_text()) if COUNT.exists() else 0\n"
        "    COUNT.write_text(str(n + 1))\n"
        "    if n < 2:\n"
        "        raise ConnectionError('upstream 503')\n"
        "    return record\n"
    )
    wf = write_workflow(
        tmp_path,
        "workflow:\n"
        "  - {name: call, type: transform, script: flaky.py,"
        " retry: {attempts: 3, backoff: 0.01}}\n",
        {"flaky.py": flaky},
    )
    rec = Recorder()

    async def main() -> relayflow.RunResult:
        async with relayflow.Runner(wf, consumers=[rec]) as runner:
            return await runner.run({"x": 1})

    result = asyncio.run(main())
    assert result.status == "succeeded"
    failures = [e for e in rec.events if isinstance(e, ev.StepFailed)]
    assert [f.will_retry for f in failures] == [True, True]
    assert "upstream 503" in failures[0].error


def test_exhausted_retries_fail_the_run_and_keep_finished_steps(
    tmp_path: Path, store_url: str
) -> None:
    wf = write_workflow(
        tmp_path,
        "workflow:\n"
        "  - {name: ok, type: transform, script: inc.py}\n"
        "  - {name: broken, type: transform, script: bad.py,"
        " retry: {attempts: 2, backoff: 0}}\n",
        {"inc.py": INCREMENT, "bad.py": "def transform(record):\n    raise ValueError('no')\n"},
    )

    async def main() -> relayflow.RunResult:
        async with relayflow.Runner(wf, store=store_url) as runner:
            result = await runner.run({"n": 0})
            steps = {s.step: s for s in runner.store.steps(result.run_id)}
            assert steps["ok"].status == "finished"
            assert steps["ok"].output == {"n": 1}
            assert steps["broken"].status == "failed"
            assert steps["broken"].attempt == 2
            assert runner.store.get_run(result.run_id).status == "failed"
            return result

    result = asyncio.run(main())
    assert result.status == "failed"
    assert result.error is not None and "ValueError: no" in result.error


def test_step_timeout_is_a_failure_with_a_clear_message(tmp_path: Path) -> None:
    wf = write_workflow(
        tmp_path,
        "workflow:\n  - {name: slow, type: transform, script: slow.py, timeout: 0.05}\n",
        {"slow.py": "import asyncio\nasync def transform(r):\n    await asyncio.sleep(5)\n"},
    )

    async def main() -> relayflow.RunResult:
        async with relayflow.Runner(wf) as runner:
            return await runner.run({})

    result = asyncio.run(main())
    assert result.status == "failed"
    assert result.error == "slow: timed out after 0.05 s"


def test_resume_continues_at_the_first_unfinished_step(tmp_path: Path, store_url: str) -> None:
    marker = tmp_path / "fixed"
    calls = tmp_path / "calls.log"
    counting = (
        f"def transform(record):\n"
        f"    with open({str(calls)!r}, 'a') as log:\n"
        f"        log.write(STEP + '\\n')\n"
        f"    return {{**record, STEP: True}}\n"
    )
    gate = (
        "from pathlib import Path\n"
        "def transform(record):\n"
        f"    if not Path({str(marker)!r}).exists():\n"
        "        raise RuntimeError('not yet')\n"
        f"    with open({str(calls)!r}, 'a') as log:\n"
        "        log.write('gate\\n')\n"
        "    return {**record, 'gate': True}\n"
    )
    wf = write_workflow(
        tmp_path,
        "workflow:\n"
        "  - {name: one, type: transform, script: one.py}\n"
        "  - {name: two, type: transform, script: two.py}\n"
        "  - {name: gate, type: transform, script: gate.py}\n"
        "  - {name: three, type: transform, script: three.py}\n",
        {
            "one.py": counting.replace("STEP", "'one'"),
            "two.py": counting.replace("STEP", "'two'"),
            "three.py": counting.replace("STEP", "'three'"),
            "gate.py": gate,
        },
    )

    async def first() -> relayflow.RunResult:
        async with relayflow.Runner(wf, store=store_url) as runner:
            return await runner.run({})

    async def second(run_id: str) -> relayflow.RunResult:
        async with relayflow.Runner(wf, store=store_url) as runner:
            return await runner.resume(run_id)

    failed = asyncio.run(first())
    assert failed.status == "failed"
    marker.write_text("")
    resumed = asyncio.run(second(failed.run_id))
    assert resumed.status == "succeeded"
    assert resumed.output == {"one": True, "two": True, "gate": True, "three": True}
    assert calls.read_text().split() == ["one", "two", "gate", "three"]


def test_escalation_parks_the_run_and_a_decision_resumes_it(tmp_path: Path, store_url: str) -> None:
    wf = write_workflow(
        tmp_path,
        "workflow:\n"
        "  - {name: draft, type: transform, script: draft.py}\n"
        "  - {name: review, type: human_review, when: 'score < 0.5'}\n"
        "  - {name: publish, type: transform, script: publish.py}\n",
        {
            "draft.py": "def transform(r):\n    return {**r, 'answer': 'maybe'}\n",
            "publish.py": "def transform(r):\n    return {**r, 'published': r['answer']}\n",
        },
    )

    async def main() -> None:
        async with relayflow.Runner(wf, store=store_url) as runner:
            parked = await runner.run({"score": 0.2})
            assert parked.status == "waiting_review"
            assert parked.step == "review"
            pending = runner.store.reviews()
            assert [(r.run_id, r.step) for r in pending] == [(parked.run_id, "review")]
            assert pending[0].output["answer"] == "maybe"
            assert "score < 0.5" in pending[0].reason
            # resuming without a decision keeps it parked
            assert (await runner.resume(parked.run_id)).status == "waiting_review"
            done = await runner.decide(
                parked.run_id, "review", "correct", {"score": 0.2, "answer": "yes"}, "ana"
            )
            assert done.status == "succeeded"
            assert done.output == {"score": 0.2, "answer": "yes", "published": "yes"}
            steps = {s.step: s for s in runner.store.steps(parked.run_id)}
            assert steps["review"].actor == "human"
            assert runner.store.reviews() == []
            labels = runner.store.feedback(wf.name)
            assert labels[0]["label"]["answer"] == "yes"
            assert labels[0]["source"] == "review"
            passed = await runner.run({"score": 0.9})
            assert passed.status == "succeeded"

    asyncio.run(main())


def test_batch_streams_with_bounded_concurrency(tmp_path: Path, store_url: str) -> None:
    wf = write_workflow(
        tmp_path,
        "workflow:\n  - {name: work, type: transform, script: work.py}\n",
        {
            "work.py": (
                "import asyncio\n"
                "ACTIVE = [0, 0]\n"
                "async def transform(r):\n"
                "    ACTIVE[0] += 1\n"
                "    ACTIVE[1] = max(ACTIVE[1], ACTIVE[0])\n"
                "    await asyncio.sleep(0.01)\n"
                "    ACTIVE[0] -= 1\n"
                "    return {**r, 'peak': ACTIVE[1]}\n"
            )
        },
    )

    pulled: list[int] = []

    def items():
        for i in range(40):
            pulled.append(i)
            yield {"id": i}

    async def main() -> list[relayflow.RunResult]:
        async with relayflow.Runner(wf, store=store_url) as runner:
            out: list[relayflow.RunResult] = []
            async for result in runner.run_batch(items(), concurrency=3):
                # items are pulled as slots free up, never all at once
                assert len(pulled) <= len(out) + 4
                out.append(result)
            return out

    results = asyncio.run(main())
    assert len(results) == 40
    assert {r.status for r in results} == {"succeeded"}
    assert max(r.output["peak"] for r in results if r.output) == 3


def test_cancellation_records_in_flight_steps_as_cancelled(tmp_path: Path, store_url: str) -> None:
    wf = write_workflow(
        tmp_path,
        "workflow:\n  - {name: wait, type: transform, script: wait.py}\n",
        {"wait.py": "import asyncio\nasync def transform(r):\n    await asyncio.sleep(30)\n"},
    )

    async def main() -> None:
        async with relayflow.Runner(wf, store=store_url) as runner:
            batch = runner.run_batch([{"id": i} for i in range(3)], concurrency=2)
            task = asyncio.ensure_future(batch.__anext__())
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await batch.aclose()
            runs = runner.store.list_runs()
            assert sorted(r.status for r in runs) == ["cancelled", "cancelled"]
            for run in runs:
                assert [s.status for s in runner.store.steps(run.run_id)] == ["cancelled"]

    asyncio.run(main())
