"""The run store's contract: what the runner, the server, the bench and the CLI ask of a store.

A backend is one class that has these methods; ``tests/store/test_contract.py`` says exactly
what each must do, over every backend. ``SqlStore`` (SQLite, PostgreSQL) is the one today.

The contract is split by feature, a few methods each; ``RunStore`` is all of them, and
``ServerStore`` adds what only the HTTP server keeps (who owns a run, idempotency keys, the
registered workflows). The store is an event-stream consumer: the runner subscribes it, and a
``handle`` that returns an awaitable makes the runner wait until the event is durable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Iterator, Mapping, Sequence
from typing import Any, Protocol

from relayflow.core import events as ev
from relayflow.core.result import Usage
from relayflow.store.cache import CachedStep
from relayflow.store.records import (
    BadRecordRecord,
    BatchRecord,
    ClaimRecord,
    KeyClaim,
    OwnedRun,
    ReviewRecord,
    RunRecord,
    StepRecord,
    WorkflowHistory,
    WorkflowVersionRecord,
)

__all__ = [
    "BatchReads",
    "FeedbackLabels",
    "IdempotencyKeyStore",
    "ReviewQueue",
    "RunOwnership",
    "RunReads",
    "RunStore",
    "ServerStore",
    "StepCacheStore",
    "WorkflowCatalogStore",
]


class StepCacheStore(Protocol):
    """Step results kept for reuse, by the key engine/cache.py makes."""

    def get(self, key: str, now: float | None = None) -> CachedStep | None:
        """The entry under ``key``, unless there is none or it expired by ``now``."""
        ...

    def put(
        self,
        key: str,
        *,
        workflow: str,
        step: str,
        output: Mapping[str, Any],
        confidence: float | None,
        versions: Mapping[str, str],
        flags: tuple[str, ...],
        usage: Usage,
        ttl: float | None,
    ) -> None:
        """Keep a result; a ``get`` in this process sees it at once, others within moments."""
        ...


class RunReads(Protocol):
    """Runs and their steps, as the event stream wrote them."""

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def find_runs(self, prefix: str) -> list[RunRecord]:
        """The runs whose id starts with ``prefix``."""
        ...

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        workflows: Collection[str] | None = None,
        status: str | None = None,
        batch_id: str | None = None,
        since: float | None = None,
        limit: int | None = 50,
    ) -> list[RunRecord]:
        """The latest runs that match every filter given, newest first, in one query."""
        ...

    def steps(self, run_id: str) -> list[StepRecord]:
        """The run's steps in the order they started."""
        ...

    def steps_of(self, run_ids: Sequence[str]) -> dict[str, list[StepRecord]]:
        """``steps`` of many runs at once; every id asked for is a key."""
        ...

    def workflow_history(self, workflow: str, *, limit: int = 1000) -> WorkflowHistory:
        """Runs by status, and the ``limit`` latest runs with steps and escalations."""
        ...


class BatchReads(Protocol):
    """Batches, the runs each made, and the records that could not become runs."""

    def batch_runs(self, batch_id: str) -> Iterator[tuple[str, str, str]]:
        """``(item_key, run_id, status)`` of every run of the batch."""
        ...

    def get_batch(self, batch_id: str) -> BatchRecord | None: ...

    def list_batches(
        self, *, workflow: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[BatchRecord]: ...

    def batch_counts(self, batch_ids: list[str]) -> dict[str, dict[str, int]]:
        """Per batch: runs per status, and ``bad``: its records that are bad still."""
        ...

    def bad_records(self, batch_id: str, *, limit: int | None = None) -> list[BadRecordRecord]:
        """The batch's bad records in the order they were met, less those run since."""
        ...


class ReviewQueue(Protocol):
    """Escalated steps waiting for a person, and who has claimed which."""

    def reviews(
        self,
        *,
        status: str | None = "pending",
        workflows: Collection[str] | None = None,
        limit: int = 100,
    ) -> list[ReviewRecord]:
        """Reviews oldest first, in one query; ``status`` None: every status."""
        ...

    def get_review(self, review_id: str) -> ReviewRecord | None: ...

    def cancel_reviews(self, run_id: str) -> None:
        """Mark the run's pending reviews ``cancelled``."""
        ...

    def review_claim(self, review_id: str) -> ClaimRecord | None: ...

    def claim_review(self, review_id: str, by: str, token_id: str | None, at: float) -> None:
        """Record ``by`` as holding the review from ``at``, replacing an earlier claim."""
        ...

    def release_review(self, review_id: str) -> None: ...


class FeedbackLabels(Protocol):
    """Labels for the feedback loop: reviewers' decisions (written from events) and by hand."""

    def add_feedback(
        self,
        workflow: str,
        label: Mapping[str, Any],
        *,
        run_id: str | None = None,
        step: str | None = None,
        item_key: str | None = None,
    ) -> None: ...

    def feedback(self, workflow: str) -> list[dict[str, Any]]:
        """The workflow's labels, oldest first, each a row with ``label`` decoded."""
        ...


class RunStore(RunReads, BatchReads, ReviewQueue, FeedbackLabels, Protocol):
    """Everything a runner, the bench and the CLI use. Reads see every event handled before."""

    @property
    def url(self) -> str:
        """Where the store is (a SQLAlchemy URL): agents that open the database themselves
        (retrain, budgets) open this one."""
        ...

    @property
    def cache(self) -> StepCacheStore: ...

    def handle(self, event: ev.Event) -> Awaitable[None] | None:
        """Record what ``event`` says; an awaitable when the caller must wait for it to be
        durable (a finished step, before its dependents start)."""
        ...

    def record_queued(
        self,
        run_id: str,
        workflow: str,
        workflow_version: str,
        data: Mapping[str, Any],
        *,
        batch_id: str | None = None,
        item_key: str | None = None,
    ) -> None:
        """Record, durably now, a run accepted but not started (status ``queued``)."""
        ...

    def flush(self) -> None:
        """Put everything handled so far into the database, for other processes to read."""
        ...

    def close(self) -> None:
        """Flush and let go of the database; the store is not used afterwards."""
        ...


class RunOwnership(Protocol):
    """The runs a server took on, so that a restarted server picks up its own."""

    def own_run(self, run_id: str, workflow: str, version: str, token_id: str | None) -> None: ...

    def owned_runs(self, statuses: Collection[str]) -> list[OwnedRun]:
        """Owned runs in one of ``statuses``, oldest first."""
        ...


class IdempotencyKeyStore(Protocol):
    """``Idempotency-Key`` claims per token and workflow."""

    def claim_key(
        self, token_id: str, workflow: str, key: str, kind: str, digest: str, result_id: str
    ) -> KeyClaim | None:
        """None when this call claimed ``key`` for ``result_id``; else the earlier claim."""
        ...

    def find_key(self, token_id: str, workflow: str, key: str) -> KeyClaim | None: ...

    def release_key(self, token_id: str, workflow: str, key: str) -> None: ...


class WorkflowCatalogStore(Protocol):
    """The workflows registered on a server: versions kept once, registrations always."""

    def keep_workflow_version(
        self,
        version: WorkflowVersionRecord,
        *,
        token_id: str | None,
        source: str,
        files_hash: str,
        runs_code: bool,
    ) -> None: ...

    def workflow_registrations(self, name: str) -> list[dict[str, Any]]: ...

    def workflow_names(self) -> list[str]: ...

    def workflow_versions(self, name: str) -> list[dict[str, Any]]:
        """``version``, ``file``, ``created``, ``registered_by`` of each, newest first."""
        ...

    def workflow_version(self, name: str, version: str) -> WorkflowVersionRecord | None: ...


class ServerStore(RunStore, RunOwnership, IdempotencyKeyStore, WorkflowCatalogStore, Protocol):
    """What the HTTP server asks of its store, on top of a run store's contract."""
