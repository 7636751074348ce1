"""The RunStore contract, over every backend: what a store must do for the runner, the server,
the bench and the CLI (store/protocol.py). A new backend adds one entry to ``BACKENDS`` and
passes this file; most of what it stores comes from a real runner's events.

PostgreSQL runs when ``RELAYFLOW_TEST_PG_URL`` names a database (``source
scripts/test-services.sh`` starts one); the tests skip with that reason otherwise.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import relayflow
from relayflow.agents.formats import BadRecord
from relayflow.core import events as ev
from relayflow.core.result import Usage
from relayflow.engine.runner import RunResult
from relayflow.store.protocol import RunStore, ServerStore
from relayflow.store.records import WorkflowVersionRecord
from relayflow.store.sql_store import SqlStore
from tests.engine.helpers import write_workflow

#: prepare (cached) → review (escalates when n > 2) → finish
WORKFLOW = """\
name: contract
workflow:
  - {name: prepare, type: transform, script: prepare.py, cache: true}
  - {name: review, type: human_review, when: "data.n > 2"}
  - {name: finish, type: transform, script: finish.py}
"""
SCRIPTS = {
    "prepare.py": "def transform(r):\n    return {**r, 'prepared': True}\n",
    "finish.py": "def transform(r):\n    return {**r, 'done': True}\n",
}


@dataclass(frozen=True, slots=True)
class Backend:
    """A way to open stores on one fresh database: every call is another store (another
    process, as far as the store can tell) on the same data."""

    name: str
    open: Callable[[], ServerStore]


def _sqlite(tmp_path: Path) -> Iterator[Callable[[], ServerStore]]:
    url = f"sqlite:///{tmp_path}/runs.db"
    yield lambda: SqlStore(url)


def _postgres(_tmp_path: Path) -> Iterator[Callable[[], ServerStore]]:
    url = os.environ.get("RELAYFLOW_TEST_PG_URL")
    if not url:
        pytest.skip(
            "no PostgreSQL: set RELAYFLOW_TEST_PG_URL (`source scripts/test-services.sh` "
            "starts one on loopback)"
        )
    from sqlalchemy import create_engine

    from relayflow.store.migrations import metadata  # every table, relayflow_meta included

    engine = create_engine(url)
    metadata.drop_all(engine)
    try:
        yield lambda: SqlStore(url)
    finally:
        metadata.drop_all(engine)
        engine.dispose()


BACKENDS: dict[str, Callable[[Path], Iterator[Callable[[], ServerStore]]]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    opened = BACKENDS[request.param](tmp_path)
    yield Backend(request.param, next(opened))
    for _ in opened:  # the backend's own clean-up
        pass


@pytest.fixture
def store(backend: Backend) -> Iterator[ServerStore]:
    store = backend.open()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def workflow(tmp_path: Path) -> relayflow.Workflow:
    folder = tmp_path / "wf"
    folder.mkdir()
    return write_workflow(folder, WORKFLOW, SCRIPTS)


class Seen:
    """Every event the runner emitted, for comparing with what the store gives back."""

    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def handle(self, event: ev.Event) -> None:
        self.events.append(event)

    def finished(self, step: str) -> list[ev.StepFinished]:
        return [e for e in self.events if isinstance(e, ev.StepFinished) and e.step == step]


def _run(
    workflow: relayflow.Workflow,
    store: RunStore,
    items: list[dict[str, Any]],
    *,
    seen: Seen | None = None,
) -> list[RunResult]:
    async def main() -> list[RunResult]:
        consumers = [seen] if seen is not None else []
        async with relayflow.Runner(workflow, store=store, consumers=consumers) as runner:
            return [await runner.run(item, item_key=str(i)) for i, item in enumerate(items)]

    return asyncio.run(main())


# ---- runs and steps ----------------------------------------------------------------------------


def test_a_runners_events_read_back_as_runs_and_steps(
    store: ServerStore, workflow: relayflow.Workflow
) -> None:
    seen = Seen()
    ok, parked = _run(workflow, store, [{"n": 1}, {"n": 5}], seen=seen)
    assert (ok.status, parked.status, parked.step) == ("succeeded", "waiting_review", "review")

    run = store.get_run(ok.run_id)
    assert run is not None
    assert (run.workflow, run.workflow_version, run.status) == (
        "contract",
        workflow.version,
        "succeeded",
    )
    assert (run.input, run.output, run.item_key, run.error) == (
        {"n": 1},
        {"n": 1, "prepared": True, "done": True},
        "0",
        None,
    )
    assert run.ended is not None and run.ended >= run.started
    assert [(s.step, s.status, s.actor) for s in store.steps(ok.run_id)] == [
        ("prepare", "finished", "agent"),
        ("review", "finished", "agent"),
        ("finish", "finished", "agent"),
    ]
    [prepared] = [s for s in store.steps(ok.run_id) if s.step == "prepare"]
    [event] = [e for e in seen.finished("prepare") if e.run_id == ok.run_id]
    assert (prepared.agent_type, prepared.output, prepared.attempt) == (
        "transform",
        {"n": 1, "prepared": True},
        1,
    )
    assert dict(prepared.versions) == dict(event.versions)
    assert (prepared.started, prepared.ended) == pytest.approx((event.started, event.ended))

    waiting = store.get_run(parked.run_id)
    assert waiting is not None
    assert (waiting.status, waiting.waiting_step, waiting.output) == (
        "waiting_review",
        "review",
        None,
    )
    assert [(s.step, s.status) for s in store.steps(parked.run_id)] == [
        ("prepare", "finished"),
        ("review", "escalated"),
    ]
    assert store.get_run("no-such-run") is None
    assert store.steps("no-such-run") == []


def test_a_runner_leaves_open_a_store_it_was_given(
    backend: Backend, store: ServerStore, workflow: relayflow.Workflow
) -> None:
    [first] = _run(workflow, store, [{"n": 1}])
    [second] = _run(workflow, store, [{"n": 2}])  # the same store, after a runner closed
    assert {r.status for r in (first, second)} == {"succeeded"}
    store.flush()
    other = backend.open()  # another process reads what was flushed
    try:
        assert [r.run_id for r in other.list_runs(workflow="contract")] == [
            second.run_id,
            first.run_id,
        ]
    finally:
        other.close()


def test_listing_runs_filters_in_every_combination(
    store: ServerStore, workflow: relayflow.Workflow
) -> None:
    results = _run(workflow, store, [{"n": 1}, {"n": 5}, {"n": 2}])
    ids = [r.run_id for r in results]
    newest_first = ids[::-1]
    assert [r.run_id for r in store.list_runs()] == newest_first
    assert [r.run_id for r in store.list_runs(limit=2)] == newest_first[:2]
    assert [r.run_id for r in store.list_runs(limit=None)] == newest_first
    assert [r.run_id for r in store.list_runs(workflow="contract")] == newest_first
    assert store.list_runs(workflow="another") == []
    assert [r.run_id for r in store.list_runs(workflows=["another", "contract"])] == newest_first
    assert store.list_runs(workflows=[]) == []
    assert [r.run_id for r in store.list_runs(status="waiting_review")] == [ids[1]]
    assert [r.run_id for r in store.list_runs(status="succeeded", limit=1)] == [ids[2]]
    started = store.get_run(ids[1])
    assert started is not None
    assert [r.run_id for r in store.list_runs(since=started.started)] == newest_first[:2]
    assert store.list_runs(since=time.time() + 60) == []
    # a listed run is the whole record, as get_run gives it
    assert store.list_runs(status="waiting_review") == [started]
    prefix = ids[0][:-1]
    found = [r.run_id for r in store.find_runs(prefix)]
    assert ids[0] in found and all(i.startswith(prefix) for i in found)
    assert [r.run_id for r in store.find_runs(ids[0])] == [ids[0]]
    assert store.find_runs("no-such-prefix") == []


def test_steps_of_many_runs_at_once(store: ServerStore, workflow: relayflow.Workflow) -> None:
    ok, parked = _run(workflow, store, [{"n": 1}, {"n": 5}])
    many = store.steps_of([ok.run_id, parked.run_id, "no-such-run"])
    assert many == {
        ok.run_id: store.steps(ok.run_id),
        parked.run_id: store.steps(parked.run_id),
        "no-such-run": [],
    }
    assert store.steps_of([]) == {}


def test_a_queued_run_is_recorded_now_and_moved_on_by_its_run(
    backend: Backend, store: ServerStore, workflow: relayflow.Workflow
) -> None:
    store.record_queued("queued-1", "contract", workflow.version, {"n": 1}, item_key="k")
    other = backend.open()  # committed at once: another process sees it
    try:
        queued = other.get_run("queued-1")
        assert queued is not None
        assert (queued.status, queued.input, queued.item_key) == ("queued", {"n": 1}, "k")
    finally:
        other.close()

    async def main() -> RunResult:
        async with relayflow.Runner(workflow, store=store) as runner:
            return await runner.run({"n": 1}, run_id="queued-1", item_key="k")

    assert asyncio.run(main()).status == "succeeded"
    run = store.get_run("queued-1")
    assert run is not None and run.status == "succeeded"


def test_a_run_resumes_from_what_another_store_kept(
    backend: Backend, workflow: relayflow.Workflow
) -> None:
    first = backend.open()
    try:
        [parked] = _run(workflow, first, [{"n": 5}])
    finally:
        first.close()
    later = backend.open()  # a later process decides and resumes it: nothing was lost

    async def main() -> RunResult:
        async with relayflow.Runner(workflow, store=later) as runner:
            return await runner.decide(parked.run_id, "review", "approve", None, "ana")

    try:
        result = asyncio.run(main())
        assert (result.status, result.output) == (
            "succeeded",
            {"n": 5, "prepared": True, "done": True},
        )
        steps = {s.step: s for s in later.steps(parked.run_id)}
        assert (steps["review"].status, steps["review"].actor) == ("finished", "human")
        assert steps["review"].versions["reviewer"] == "ana"
        assert [s.step for s in later.steps(parked.run_id)][-1] == "finish"
    finally:
        later.close()


# ---- batches -----------------------------------------------------------------------------------


def test_a_batch_its_runs_and_its_bad_records(
    store: ServerStore, workflow: relayflow.Workflow
) -> None:
    items: list[Any] = [{"n": 1}, BadRecord("in.jsonl:2", "not JSON", "{oops"), {"n": 5}]

    async def main() -> list[RunResult]:
        async with relayflow.Runner(workflow, store=store) as runner:
            batch = runner.run_batch(items, batch_id="b1", concurrency=2, inputs_name="in.jsonl")
            return [r async for r in batch]

    results = asyncio.run(main())
    assert sorted(r.status for r in results) == ["succeeded", "waiting_review"]
    by_key = {r.item_key: r for r in results}
    assert sorted(store.batch_runs("b1")) == [
        ("0", by_key["0"].run_id, "succeeded"),
        ("2", by_key["2"].run_id, "waiting_review"),
    ]
    assert list(store.batch_runs("no-such-batch")) == []
    batch = store.get_batch("b1")
    assert batch is not None
    assert (batch.workflow, batch.workflow_file, batch.inputs, batch.concurrency) == (
        "contract",
        str(workflow.file),
        "in.jsonl",
        2,
    )
    assert (batch.status, batch.runs) == ("finished", 2)
    assert store.get_batch("no-such-batch") is None
    assert [b.batch_id for b in store.list_batches()] == ["b1"]
    assert [b.batch_id for b in store.list_batches(workflow="contract", status="finished")] == [
        "b1"
    ]
    assert store.list_batches(status="running") == []
    assert store.batch_counts(["b1", "b2"]) == {
        "b1": {"succeeded": 1, "waiting_review": 1, "bad": 1},
        "b2": {},
    }
    assert store.batch_counts([]) == {}
    [bad] = store.bad_records("b1")
    assert (bad.item_key, bad.location, bad.reason, bad.excerpt) == (
        "1",
        "in.jsonl:2",
        "not JSON",
        "{oops",
    )
    assert store.bad_records("b1", limit=0) == []
    assert {r.run_id for r in store.list_runs(batch_id="b1")} == {r.run_id for r in results}


def test_a_bad_record_run_since_in_its_place_is_bad_no_longer(
    store: ServerStore, workflow: relayflow.Workflow
) -> None:
    async def main() -> None:
        async with relayflow.Runner(workflow, store=store) as runner:
            first = [BadRecord("in.jsonl:1", "not JSON", "{")]
            _ = [r async for r in runner.run_batch(first, batch_id="b1")]
            # the record was fixed: the batch runs again and the run takes its place
            _ = [r async for r in runner.run_batch([{"n": 1}], batch_id="b1")]

    asyncio.run(main())
    assert store.bad_records("b1") == []
    assert store.batch_counts(["b1"]) == {"b1": {"succeeded": 1}}


# ---- reviews, claims, feedback -----------------------------------------------------------------


def test_reviews_are_queued_claimed_decided_and_become_labels(
    store: ServerStore, workflow: relayflow.Workflow
) -> None:
    ok, parked, other = _run(workflow, store, [{"n": 1}, {"n": 5}, {"n": 7}])
    assert ok.status == "succeeded"
    pending = store.reviews()
    assert [r.run_id for r in pending] == [parked.run_id, other.run_id]  # oldest first
    review = pending[0]
    assert (review.review_id, review.step, review.workflow, review.status) == (
        f"{parked.run_id}:review",
        "review",
        "contract",
        "pending",
    )
    assert review.input == {"n": 5, "prepared": True}
    assert review.reason.startswith("when:")
    assert store.get_review(review.review_id) == review
    assert store.get_review("no-such-review") is None
    assert store.reviews(workflows=["another"]) == []
    assert len(store.reviews(workflows=["contract"], limit=1)) == 1

    assert store.review_claim(review.review_id) is None
    store.claim_review(review.review_id, "ana", "t-ana", 100.0)
    claim = store.review_claim(review.review_id)
    assert claim is not None
    assert (claim.claimed_by, claim.token_id, claim.claimed) == ("ana", "t-ana", 100.0)
    store.claim_review(review.review_id, "bo", None, 200.0)  # a claim replaces the last
    claim = store.review_claim(review.review_id)
    assert claim is not None and (claim.claimed_by, claim.token_id) == ("bo", None)
    store.release_review(review.review_id)
    assert store.review_claim(review.review_id) is None
    store.release_review(review.review_id)  # releasing nothing is harmless

    async def decide() -> RunResult:
        async with relayflow.Runner(workflow, store=store) as runner:
            corrected = {"n": 5, "prepared": True, "checked": True}
            return await runner.decide(parked.run_id, "review", "correct", corrected, "bo")

    assert asyncio.run(decide()).status == "succeeded"
    decided = store.get_review(review.review_id)
    assert decided is not None
    assert (decided.status, decided.decision, decided.reviewer) == ("corrected", "correct", "bo")
    assert decided.decided_output == {"n": 5, "prepared": True, "checked": True}
    assert decided.decided is not None
    assert [r.review_id for r in store.reviews()] == [f"{other.run_id}:review"]
    assert {r.status for r in store.reviews(status=None)} == {"corrected", "pending"}
    [label] = store.feedback("contract")
    assert (label["source"], label["run_id"], label["step"], label["item_key"]) == (
        "review",
        parked.run_id,
        "review",
        "1",
    )
    assert label["label"] == {"n": 5, "prepared": True, "checked": True}

    store.cancel_reviews(other.run_id)
    assert store.reviews() == []
    cancelled = store.get_review(f"{other.run_id}:review")
    assert cancelled is not None and cancelled.status == "cancelled"
    store.cancel_reviews(other.run_id)  # nothing pending is left: nothing changes
    assert store.get_review(review.review_id) == decided


def test_feedback_added_by_hand(store: ServerStore) -> None:
    store.add_feedback("wf", {"intent": "refund"}, run_id="r1", step="s", item_key="3")
    store.add_feedback("wf", {"intent": "billing"})
    store.add_feedback("another", {"x": 1})
    labels = store.feedback("wf")
    assert [row["label"] for row in labels] == [{"intent": "refund"}, {"intent": "billing"}]
    assert {row["source"] for row in labels} == {"manual"}
    assert (labels[0]["run_id"], labels[0]["step"], labels[0]["item_key"]) == ("r1", "s", "3")
    assert labels[1]["run_id"] is None
    assert store.feedback("nobody") == []


# ---- the step cache ----------------------------------------------------------------------------


def test_the_step_cache_answers_a_repeated_step(
    store: ServerStore, workflow: relayflow.Workflow
) -> None:
    seen = Seen()
    _run(workflow, store, [{"n": 1}, {"n": 1}, {"n": 2}], seen=seen)
    assert [e.cached for e in seen.finished("prepare")] == [False, True, False]
    assert [e.cached for e in seen.finished("finish")] == [False, False, False]


def test_cache_entries_keep_their_fields_expire_and_reach_other_stores(
    backend: Backend, store: ServerStore
) -> None:
    usage = Usage(3, 4, 1, 0.5, 0.01)
    store.cache.put(
        "k1",
        workflow="wf",
        step="s",
        output={"a": 1},
        confidence=0.75,
        versions={"script": "v1"},
        flags=("odd",),
        usage=usage,
        ttl=None,
    )
    store.cache.put(
        "k2",
        workflow="wf",
        step="s",
        output={"b": 2},
        confidence=None,
        versions={},
        flags=(),
        usage=Usage(),
        ttl=10.0,
    )
    hit = store.cache.get("k1")
    assert hit is not None
    assert (hit.output, hit.confidence, hit.versions, hit.flags, hit.usage, hit.expires) == (
        {"a": 1},
        0.75,
        {"script": "v1"},
        ("odd",),
        usage,
        None,
    )
    assert store.cache.get("no-such-key") is None
    assert store.cache.get("k2") is not None
    assert store.cache.get("k2", now=time.time() + 11) is None  # expired by then
    store.flush()
    other = backend.open()
    try:
        from_db = other.cache.get("k1")
        assert from_db is not None
        assert (from_db.output, from_db.flags, from_db.usage) == ({"a": 1}, ("odd",), usage)
        assert other.cache.get("k2", now=time.time() + 11) is None
    finally:
        other.close()


# ---- a workflow's history (the server's figures) -----------------------------------------------


def test_a_workflows_history(store: ServerStore, workflow: relayflow.Workflow) -> None:
    ok, parked, again = _run(workflow, store, [{"n": 1}, {"n": 5}, {"n": 2}])
    history = store.workflow_history("contract")
    assert dict(history.by_status) == {"succeeded": 2, "waiting_review": 1}
    assert {r.run_id for r in history.runs} == {ok.run_id, parked.run_id, again.run_id}
    assert [s.step for s in history.steps[ok.run_id]] == ["prepare", "review", "finish"]
    assert dict(history.escalations) == {parked.run_id: 1}
    latest = store.workflow_history("contract", limit=1)
    assert [r.run_id for r in latest.runs] == [again.run_id]
    assert dict(latest.by_status) == {"succeeded": 2, "waiting_review": 1}  # every run
    assert dict(latest.escalations) == {}
    empty = store.workflow_history("another")
    assert (dict(empty.by_status), empty.runs, dict(empty.steps)) == ({}, (), {})


# ---- what only the server keeps ----------------------------------------------------------------


def test_the_runs_a_server_owns(store: ServerStore, workflow: relayflow.Workflow) -> None:
    store.record_queued("q1", "contract", workflow.version, {"n": 1})
    store.own_run("q1", "contract", workflow.version, "t1")
    [done] = _run(workflow, store, [{"n": 1}])
    store.own_run(done.run_id, "contract", workflow.version, None)
    [owned] = store.owned_runs(("queued", "running"))
    assert (owned.run.run_id, owned.run.status, owned.run.input, owned.token_id) == (
        "q1",
        "queued",
        {"n": 1},
        "t1",
    )
    store.own_run("q1", "contract", workflow.version, "t2")  # taken over by another token
    assert [o.token_id for o in store.owned_runs(["queued"])] == ["t2"]
    assert [o.run.run_id for o in store.owned_runs(["succeeded"])] == [done.run_id]
    assert store.owned_runs([]) == []


def test_idempotency_keys(store: ServerStore) -> None:
    assert store.claim_key("t1", "wf", "key-1", "run", "h1", "r1") is None
    earlier = store.claim_key("t1", "wf", "key-1", "run", "h2", "r2")
    assert earlier is not None
    assert (earlier.kind, earlier.body_hash, earlier.result_id) == ("run", "h1", "r1")
    assert store.find_key("t1", "wf", "key-1") == earlier
    # a key is the token's and the workflow's own
    assert store.claim_key("t2", "wf", "key-1", "batch", "h3", "b1") is None
    assert store.claim_key("t1", "other", "key-1", "run", "h1", "r9") is None
    store.release_key("t1", "wf", "key-1")
    assert store.find_key("t1", "wf", "key-1") is None
    assert store.claim_key("t1", "wf", "key-1", "run", "h2", "r2") is None
    store.release_key("t1", "wf", "never-claimed")  # harmless


def test_the_workflow_catalog(store: ServerStore) -> None:
    def version(v: str, created: float, by: str = "ana") -> WorkflowVersionRecord:
        return WorkflowVersionRecord("wf", v, f"/w/{v}.yaml", f"text {v}", by, created)

    store.keep_workflow_version(
        version("v1", 1.0), token_id="t1", source="yaml", files_hash="h1", runs_code=False
    )
    # the same version again: the first row stays, the registration is recorded
    store.keep_workflow_version(
        version("v1", 5.0, "bo"), token_id=None, source="path", files_hash="h1", runs_code=True
    )
    store.keep_workflow_version(
        version("v2", 2.0), token_id="t1", source="bundle", files_hash="h2", runs_code=True
    )
    assert store.workflow_names() == ["wf"]
    assert store.workflow_versions("wf") == [
        {"version": "v2", "file": "/w/v2.yaml", "created": 2.0, "registered_by": "ana"},
        {"version": "v1", "file": "/w/v1.yaml", "created": 1.0, "registered_by": "ana"},
    ]
    assert store.workflow_versions("nothing") == []
    assert store.workflow_version("wf", "v1") == version("v1", 1.0)
    assert store.workflow_version("wf", "v9") is None
    registrations = store.workflow_registrations("wf")
    assert [(r["version"], r["source"], r["runs_code"]) for r in registrations] == [
        ("v2", "bundle", True),
        ("v1", "path", True),
        ("v1", "yaml", False),
    ]
    assert registrations[1]["registered_by"] == "bo"
    assert store.workflow_registrations("nothing") == []
