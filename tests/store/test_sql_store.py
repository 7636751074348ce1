"""The store on every backend: what the event stream writes is what reads give back."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from relayflow.core import events as ev
from relayflow.core.result import Usage
from relayflow.store.sql_store import SqlStore


def _write_run(store: SqlStore, run_id: str) -> None:
    now = time.time()
    store.handle(ev.RunStarted(run_id, "wf", "v1", {"q": "hi"}, now, "b1", "0"))
    store.handle(
        ev.StepFinished(
            run_id,
            "a",
            "transform",
            1,
            now,
            now + 0.01,
            {"q": "hi", "a": 1},
            0.9,
            Usage(3, 4, 1, 0.01, 0.002),
            {"script": "abc"},
        )
    )
    store.handle(ev.RunFinished(run_id, "succeeded", {"q": "hi", "a": 1}, None, now + 0.02))


def test_events_round_trip(store_url: str) -> None:
    async def main() -> None:
        store = SqlStore(store_url)
        try:
            _write_run(store, "r1")
            run = store.get_run("r1")
            assert run is not None
            assert (run.status, run.input, run.output) == (
                "succeeded",
                {"q": "hi"},
                {"q": "hi", "a": 1},
            )
            [step] = store.steps("r1")
            assert (step.status, step.confidence, step.input_tokens, step.cost) == (
                "finished",
                0.9,
                3,
                0.002,
            )
            assert step.versions == {"script": "abc"}
            assert list(store.batch_runs("b1")) == [("0", "r1", "succeeded")]
            assert [r.run_id for r in store.list_runs(status="succeeded")] == ["r1"]
        finally:
            store.close()

    asyncio.run(main())


def test_a_dead_writers_log_is_applied_by_the_next_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/runs.db"

    async def crash() -> None:
        store = SqlStore(url)
        _write_run(store, "r1")  # durable in the log, not yet checkpointed
        assert store._journal is not None
        log = store._journal.path
        assert log.stat().st_size > 0
        os.close(store._journal._fd)  # the process "dies": its lock goes, its log stays

    asyncio.run(crash())
    reader = SqlStore(url)
    try:
        run = reader.get_run("r1")
        # the finished step was durable; the run's final row is written lazily (resume
        # finishes such a run without executing anything)
        assert run is not None and run.status == "running"
        assert [(s.step, s.status) for s in reader.steps("r1")] == [("a", "finished")]
        assert list(tmp_path.glob("runs.db.rflog.*")) == [reader._journal.path]  # type: ignore[union-attr]
    finally:
        reader.close()


def test_a_live_writers_log_is_left_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/runs.db"

    async def main() -> None:
        writer = SqlStore(url)
        _write_run(writer, "r1")
        other = SqlStore(url)  # a second process reading while the writer works
        try:
            assert other.get_run("r1") is None  # not checkpointed yet, and not stolen
        finally:
            other.close()
        writer.flush()
        reader = SqlStore(url)
        try:
            assert reader.get_run("r1") is not None
        finally:
            reader.close()
            writer.close()

    asyncio.run(main())


def test_listing_runs_is_one_query_however_many_runs(store_url: str) -> None:
    from sqlalchemy import event

    async def main() -> None:
        store = SqlStore(store_url)
        try:
            for i in range(20):
                _write_run(store, f"r{i:02d}")
            store.flush()
            statements: list[str] = []

            def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
                statements.append(statement)

            event.listen(store.engine, "before_cursor_execute", count)
            runs = store.list_runs(workflow="wf", status="succeeded", batch_id="b1", limit=None)
            event.remove(store.engine, "before_cursor_execute", count)
            assert len(runs) == 20
            assert len(statements) == 1
        finally:
            store.close()

    asyncio.run(main())
