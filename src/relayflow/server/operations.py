"""The server's logic, apart from HTTP: every call takes the caller's token, checks its role,
records a refusal, redacts what the token may not read, and answers with the API's models.

The JSON routes (server/routes.py) and the review pages call the same methods:

    svc = request.app.state.operations
    token = svc.authenticate(secret)                       # Unauthenticated
    await svc.register_workflow(token, name=…, yaml=…, files=… | path=…)  # SpecError (422)
    svc.list_workflows(token) / svc.get_workflow(token, name) / svc.registrations(token, name)
    await svc.submit(token, name, data, version=None, idempotency_key=None)  # (RunView, replayed)
    await svc.submit_batch(token, name, items, idempotency_key=None)  # (BatchView, replayed)
    svc.list_runs(token, workflow=…, status=…, batch_id=…) / svc.get_run(token, run_id)
    await svc.cancel(token, run_id) / await svc.resume(token, run_id)
    svc.run_events(token, run_id)                           # async iterator of (name, data)
    svc.list_reviews(token, workflow=…, status=…) / svc.get_review(token, review_id)
    svc.claim_review(token, review_id) / svc.release_review(token, review_id)
    await svc.decide(token, review_id, "approve" | "correct", output)  # -> Decision
    svc.add_feedback(token, FeedbackIn) / svc.list_feedback(token, workflow)
    svc.workflow_metrics(token, name) / svc.denials(token)

Errors: AccessDenied (403, recorded), NotFound (404), Conflict (409), Unauthenticated (401),
SpecError (422). All store access happens on the event loop's thread (call from ``async def``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from relayflow.core import events as ev
from relayflow.core.events import event_json
from relayflow.core.ids import new_id
from relayflow.errors import AccessDenied, Conflict, NotFound, Unauthenticated
from relayflow.govern.access import Action, Token, TokenStore, needed_for
from relayflow.govern.principal import Principal
from relayflow.observe.metrics import PrometheusMetrics
from relayflow.scrub import get_logger
from relayflow.server.catalog import Catalog, Prepared
from relayflow.server.events import NAMES, EventHub
from relayflow.server.idempotency import Kind, body_hash
from relayflow.server.pool import WorkerPool
from relayflow.server.redact import Redactor
from relayflow.server.schemas import (
    AgentInfo,
    BatchView,
    Decision,
    DenialView,
    FeedbackIn,
    FeedbackView,
    GrantView,
    Me,
    Registration,
    ReviewView,
    RunView,
    StepView,
    WorkflowInfo,
    WorkflowMetrics,
    WorkflowVersion,
)
from relayflow.server.summary import workflow_metrics
from relayflow.store.database import sqlite_file

if TYPE_CHECKING:
    from relayflow.engine.runner import Runner, RunResult
    from relayflow.schema.workflow import Workflow
    from relayflow.store.protocol import ServerStore
    from relayflow.store.records import KeyClaim, ReviewRecord, RunRecord, StepRecord

log = get_logger("relayflow.server")

FINAL = ("succeeded", "failed", "cancelled")
#: who reads ``/metrics``: a token with a grant on ``*`` (default), anyone, or no one
MetricsAccess = Literal["token", "public", "off"]


class Operations:
    """One per app (``app.state.operations``); ``start`` and ``close`` bracket its life."""

    def __init__(
        self,
        store_url: str,
        *,
        workers: int = 8,
        workflows_dir: str | Path | None = None,
        claim_seconds: float = 900.0,
        workflow_roots: Sequence[Path] = (),
        metrics_access: MetricsAccess = "token",
    ) -> None:
        self.store_url = store_url
        self.workers = workers
        self.claim_seconds = claim_seconds
        self._workflows_dir = workflows_dir
        #: the folders a workflow registered by path (and every file one names) must be in
        self.workflow_roots = tuple(workflow_roots)
        self.metrics_access = metrics_access
        self.metrics = PrometheusMetrics()
        self.hub = EventHub()
        self.store: ServerStore
        self.tokens: TokenStore
        self.catalog: Catalog
        self.pool: WorkerPool

    # ---- life ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store and start what a previous server left queued or running."""
        from relayflow.store.sql_store import SqlStore

        store = SqlStore(self.store_url)
        self.store = store
        self.tokens = TokenStore(store.engine)
        self.catalog = Catalog(store, self._default_dir(), self.workflow_roots)
        self.pool = WorkerPool(self.store, [self.hub, self.metrics], self.workers)
        await self._recover()

    def _default_dir(self) -> Path:
        if self._workflows_dir is not None:
            return Path(self._workflows_dir)
        database = sqlite_file(self.store.url)
        if database is not None:
            return database.absolute().parent / "workflows"
        return Path(".relayflow") / "workflows"

    async def close(self) -> None:
        try:
            await self.pool.close()
        finally:
            self.store.close()

    async def _recover(self) -> None:
        rows = self.store.owned_runs(("queued", "running"))
        for owned in rows:
            record, token_id = owned.run, owned.token_id
            workflow = self._workflow_of(record)
            if workflow is None:
                log.warning(
                    "run %s: its workflow version is not registered; left as is", record.run_id
                )
                continue
            token = self.tokens.get(token_id) if token_id else None
            if record.status == "queued":
                self._start_run(record, workflow, token)
            else:
                self.pool.submit(
                    record.run_id, workflow, _resume_job(record.run_id), _principal(token)
                )
        if rows:
            log.info("picked up %d queued or running runs", len(rows))

    # ---- identity and access ------------------------------------------------------------------

    def authenticate(self, secret: str | None) -> Token:
        if not secret:
            raise Unauthenticated("no API token: send `Authorization: Bearer <token>`")
        token = self.tokens.authenticate(secret)
        if token is None:
            self.tokens.record_denial(None, "authenticate", None, "a valid token", "unknown token")
            raise Unauthenticated("invalid or revoked API token")
        return token

    def check(self, token: Token, action: Action, workflow: str | None) -> None:
        """Raise AccessDenied (and record it) unless ``token`` may ``action`` on ``workflow``."""
        try:
            token.check(action, workflow)
        except AccessDenied as exc:
            self.tokens.record_denial(token, action, workflow, needed_for(action), str(exc))
            raise

    def me(self, token: Token) -> Me:
        return Me(
            token_id=token.token_id,
            name=token.name,
            team=token.team,
            grants=[GrantView(**g.to_json()) for g in token.grants],
        )

    def denials(self, token: Token, limit: int = 100) -> list[DenialView]:
        self.check(token, "audit", None)
        return [DenialView(**row) for row in self.tokens.denials(limit=limit)]

    # ---- workflows ----------------------------------------------------------------------------

    async def register_workflow(
        self,
        token: Token,
        *,
        name: str | None,
        yaml: str | None = None,
        path: str | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> WorkflowInfo:
        """Check the role before anything is read or written, prepare the registration off
        the event loop (reading a file, writing a bundle, validating), check the right to
        register code when it runs some, then keep it and record who did."""
        # no name: it is in the file, unread yet, so only a grant on every workflow covers it
        self.check(token, "register", name)
        prepared: Prepared
        if yaml is not None:
            assert name is not None  # noqa: S101 - invariant: the body model requires a name with yaml
            prepared = await asyncio.to_thread(self.catalog.prepare_text, name, yaml, files)
        else:
            assert path is not None  # noqa: S101 - invariant: the body model requires path without yaml
            prepared = await asyncio.to_thread(self.catalog.prepare_path, path, name)
        try:
            self.check(token, "register", prepared.workflow.name)
            if prepared.runs_code:
                self.check(token, "register_code", prepared.workflow.name)
        except AccessDenied:
            await asyncio.to_thread(self.catalog.discard, prepared)
            raise
        workflow = await asyncio.to_thread(self.catalog.commit, prepared)
        self.catalog.keep(prepared, workflow, token.name, token.token_id)
        return self._info(workflow)

    def registrations(self, token: Token, name: str) -> list[Registration]:
        self.check(token, "read", name)
        self._require_latest(name)
        return [Registration(**row) for row in self.catalog.registrations(name)]

    def _readable(self, token: Token, workflow: str | None) -> list[str]:
        """The workflows a listing covers: the one asked for (refused unless the token may
        read it), else every workflow the token may read."""
        if workflow is not None:
            self.check(token, "read", workflow)
            return [workflow]
        return token.readable(self.catalog.names())

    def list_workflows(self, token: Token) -> list[WorkflowInfo]:
        out = []
        for name in token.readable(self.catalog.names()):
            workflow = self._latest(name)
            if workflow is not None:
                out.append(self._info(workflow))
        return out

    def get_workflow(self, token: Token, name: str) -> WorkflowInfo:
        self.check(token, "read", name)
        return self._info(self._require_latest(name))

    def _latest(self, name: str) -> Workflow | None:
        versions = self.catalog.versions(name)
        return self.catalog.load(name, versions[0]["version"]) if versions else None

    def _require_latest(self, name: str) -> Workflow:
        workflow = self._latest(name)
        if workflow is None:
            raise NotFound(f"no workflow {name!r}: register it with POST /v1/workflows")
        return workflow

    def _version(self, name: str, version: str | None) -> Workflow:
        if version is None:
            return self._require_latest(name)
        workflow = self.catalog.load(name, version)
        if workflow is None:
            if not self.catalog.versions(name):
                raise NotFound(f"no workflow {name!r}: register it with POST /v1/workflows")
            raise NotFound(f"workflow {name!r} has no version {version!r}")
        return workflow

    def _info(self, workflow: Workflow) -> WorkflowInfo:
        sensitive = set(workflow.spec.access.sensitive)
        return WorkflowInfo(
            name=workflow.name,
            version=workflow.version,
            description=workflow.spec.description,
            agents=[
                AgentInfo(
                    name=a.name,
                    type=a.type,
                    depends_on=list(workflow.depends_on.get(a.name, ())),
                    sensitive=a.name in sensitive,
                )
                for a in workflow.agents
            ],
            versions=[WorkflowVersion(**v) for v in self.catalog.versions(workflow.name)],
        )

    def _workflow_of(self, record: RunRecord) -> Workflow | None:
        return self.catalog.load(record.workflow, record.workflow_version)

    # ---- runs ---------------------------------------------------------------------------------

    async def submit(
        self,
        token: Token,
        name: str,
        data: Mapping[str, Any],
        *,
        version: str | None = None,
        item_key: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[RunView, bool]:
        """Record the run as queued (durably), then hand it to the worker pool. With an
        ``idempotency_key`` a retry gets the first request's run: ``(view, replayed)``."""
        self.check(token, "submit", name)
        workflow = self._version(name, version)
        run_id = new_id()
        if idempotency_key is not None:
            body = {"input": data, "version": version, "item_key": item_key}
            earlier = self._claim_key(token, name, idempotency_key, "run", body, run_id)
            if earlier is not None:
                record = self.store.get_run(earlier)
                assert record is not None  # noqa: S101 - _claim_key released a key without its run
                return self._run_view(token, record, self._workflow_of(record), None), True
        try:
            record = self._queue(token, workflow, data, None, item_key, run_id)
        except BaseException:
            if idempotency_key is not None:
                self.store.release_key(token.token_id, name, idempotency_key)
            raise
        return self._run_view(token, record, workflow, steps=None), False

    async def submit_batch(
        self,
        token: Token,
        name: str,
        items: Sequence[Mapping[str, Any]],
        *,
        version: str | None,
        idempotency_key: str | None = None,
    ) -> tuple[BatchView, bool]:
        self.check(token, "submit", name)
        workflow = self._version(name, version)
        batch_id = new_id()
        if idempotency_key is not None:
            body = {"inputs": list(items), "version": version}
            earlier = self._claim_key(token, name, idempotency_key, "batch", body, batch_id)
            if earlier is not None:
                return self._batch_view(token, name, earlier), True
        runs: list[RunView] = []
        try:
            for i, item in enumerate(items):
                record = self._queue(token, workflow, item, batch_id, str(i), new_id())
                runs.append(self._run_view(token, record, workflow, None))
        except BaseException:
            # once a run is queued, a retry gets the batch as it is rather than a duplicate
            if idempotency_key is not None and not runs:
                self.store.release_key(token.token_id, name, idempotency_key)
            raise
        return BatchView(batch_id=batch_id, workflow=name, runs=runs), False

    def _claim_key(
        self,
        token: Token,
        name: str,
        key: str,
        kind: Kind,
        body: Mapping[str, Any],
        new: str,
    ) -> str | None:
        """Claim ``key`` for the id ``new``: None when this request is the first, else the id
        the first one created. Conflict when the key came with another request."""
        digest = body_hash(body)
        for _ in range(2):
            earlier: KeyClaim | None = self.store.claim_key(
                token.token_id, name, key, kind, digest, new
            )
            if earlier is None:
                return None
            if earlier.kind != kind or earlier.body_hash != digest:
                what = "a batch" if earlier.kind == "batch" else "a run"
                raise Conflict(
                    f"Idempotency-Key {key!r} was used for {what} of workflow {name!r} with "
                    "another body: send a new key for a new submission"
                )
            if self._submitted(kind, earlier.result_id):
                return earlier.result_id
            # the first request claimed the key but never queued anything (it died)
            self.store.release_key(token.token_id, name, key)
        raise Conflict(f"Idempotency-Key {key!r} is being used by another request: retry")

    def _submitted(self, kind: Kind, result_id: str) -> bool:
        if kind == "run":
            return self.store.get_run(result_id) is not None
        return bool(self.store.list_runs(batch_id=result_id, limit=1))

    def _batch_view(self, token: Token, name: str, batch_id: str) -> BatchView:
        records = self.store.list_runs(batch_id=batch_id, limit=None)
        records.sort(key=lambda r: int(r.item_key) if r.item_key and r.item_key.isdigit() else 0)
        runs = [self._run_view(token, r, self._workflow_of(r), None) for r in records]
        return BatchView(batch_id=batch_id, workflow=name, runs=runs)

    def _queue(
        self,
        token: Token,
        workflow: Workflow,
        data: Mapping[str, Any],
        batch_id: str | None,
        item_key: str | None,
        run_id: str,
    ) -> RunRecord:
        self.store.own_run(run_id, workflow.name, workflow.version, token.token_id)
        self.store.record_queued(
            run_id, workflow.name, workflow.version, data, batch_id=batch_id, item_key=item_key
        )
        record = self.store.get_run(run_id)
        assert record is not None  # noqa: S101 - invariant: the run was just recorded
        self._start_run(record, workflow, token)
        return record

    def _start_run(self, record: RunRecord, workflow: Workflow, token: Token | None) -> None:
        async def job(runner: Runner) -> RunResult:
            return await runner.run(
                record.input,
                run_id=record.run_id,
                batch_id=record.batch_id,
                item_key=record.item_key,
            )

        self.pool.submit(record.run_id, workflow, job, _principal(token))

    def list_runs(
        self,
        token: Token,
        *,
        workflow: str | None = None,
        status: str | None = None,
        batch_id: str | None = None,
        limit: int = 50,
    ) -> list[RunView]:
        names = self._readable(token, workflow)
        records = self.store.list_runs(
            workflows=names, status=status, batch_id=batch_id, limit=limit
        )
        pairs = [(r, self._workflow_of(r)) for r in records]
        # a redacted view needs the run's steps: read them for all such runs at once
        redacted = [r.run_id for r, w in pairs if self._hides(token, r, w)]
        known = self.store.steps_of(redacted) if redacted else {}
        return [
            self._run_view(token, r, w, steps=None, known=known.get(r.run_id)) for r, w in pairs
        ]

    def get_run(self, token: Token, run_id: str) -> RunView:
        record = self._readable_run(token, run_id)
        return self._run_view(
            token, record, self._workflow_of(record), steps=self.store.steps(run_id)
        )

    def _readable_run(self, token: Token, run_id: str) -> RunRecord:
        record = self.store.get_run(run_id)
        if record is None:
            raise NotFound(f"no run {run_id!r}")
        self.check(token, "read", record.workflow)
        return record

    async def cancel(self, token: Token, run_id: str) -> RunView:
        record = self._readable_run(token, run_id)
        self.check(token, "cancel", record.workflow)
        if record.status in FINAL:
            raise Conflict(f"run {run_id} already ended: {record.status}")
        await self.pool.cancel(run_id)
        self.pool.finish(run_id, "cancelled", f"cancelled by {token.name}")
        self.store.cancel_reviews(run_id)
        return self.get_run(token, run_id)

    async def resume(self, token: Token, run_id: str) -> RunView:
        """Continue a failed, cancelled or interrupted run from its first unfinished step."""
        record = self._readable_run(token, run_id)
        self.check(token, "submit", record.workflow)
        if record.status in ("succeeded", "waiting_review"):
            raise Conflict(
                f"run {run_id} is {record.status}"
                + (": decide its review instead" if record.status == "waiting_review" else "")
            )
        if run_id in self.pool.tasks:
            raise Conflict(f"run {run_id} is already {record.status}")
        workflow = self._workflow_of(record)
        if workflow is None:
            raise Conflict(f"run {run_id}'s workflow version is not registered on this server")
        self._own(run_id, workflow, token)
        self.pool.submit(run_id, workflow, _resume_job(run_id), _principal(token))
        return self.get_run(token, run_id)

    def _own(self, run_id: str, workflow: Workflow, token: Token) -> None:
        """Make the server responsible for a run (one started elsewhere, resumed here)."""
        self.store.own_run(run_id, workflow.name, workflow.version, token.token_id)

    def _run_view(
        self,
        token: Token,
        record: RunRecord,
        workflow: Workflow | None,
        steps: list[StepRecord] | None,
        known: list[StepRecord] | None = None,
    ) -> RunView:
        """The run as ``token`` may see it; with ``steps``, the steps too. ``known``: its
        steps read already, for redaction only (else read when redaction needs them)."""
        redactor = self._redactor(token, record, workflow, steps if steps is not None else known)
        output, _ = redactor.mask(record.output)
        views = None
        if steps is not None:
            views = []
            for s in steps:
                shown, hidden = redactor.step_output(s.step, s.output)
                views.append(
                    StepView(
                        step=s.step,
                        agent_type=s.agent_type,
                        status=s.status,
                        attempt=s.attempt,
                        actor=s.actor,
                        output=shown,
                        redacted=hidden,
                        confidence=s.confidence,
                        input_tokens=s.input_tokens,
                        output_tokens=s.output_tokens,
                        cost=s.cost,
                        model_seconds=s.model_seconds,
                        versions=dict(s.versions),
                        flags=list(s.flags),
                        error=s.error,
                        started=s.started,
                        ended=s.ended,
                    )
                )
        status = record.status
        if status == "queued" and record.run_id in self.pool.executing:
            status = "running"
        return RunView(
            run_id=record.run_id,
            workflow=record.workflow,
            workflow_version=record.workflow_version,
            status=status,  # type: ignore[arg-type]
            batch_id=record.batch_id,
            item_key=record.item_key,
            input=dict(record.input),
            output=output,
            error=record.error,
            waiting_step=record.waiting_step,
            started=record.started,
            ended=record.ended,
            steps=views,
        )

    def _redactor(
        self,
        token: Token,
        record: RunRecord,
        workflow: Workflow | None,
        steps: list[StepRecord] | None,
    ) -> Redactor:
        sensitive: list[str] = []
        deps: Mapping[str, tuple[str, ...]] = {}
        if workflow is not None and self._hides(token, record, workflow):
            sensitive = list(workflow.spec.access.sensitive)
            deps = workflow.depends_on
        redactor = Redactor(sensitive, deps, record.input)
        if redactor:
            if steps is None:
                steps = self.store.steps(record.run_id)
            order = {a.name: i for i, a in enumerate(workflow.agents)} if workflow else {}
            for s in sorted(steps, key=lambda s: order.get(s.step, len(order))):
                redactor.see(s.step, s.output)
        return redactor

    @staticmethod
    def _hides(token: Token, record: RunRecord, workflow: Workflow | None) -> bool:
        """Whether ``token`` sees the run redacted: it has sensitive steps the token may not
        read."""
        return (
            workflow is not None
            and bool(workflow.spec.access.sensitive)
            and not token.sees_sensitive(record.workflow)
        )

    # ---- events -------------------------------------------------------------------------------

    async def run_events(
        self, token: Token, run_id: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The run's recorded steps, then its live events until it ends; ``(name, data)``."""
        record = self._readable_run(token, run_id)
        workflow = self._workflow_of(record)
        return self._stream(token, record, workflow)

    async def _stream(
        self, token: Token, record: RunRecord, workflow: Workflow | None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        run_id = record.run_id
        with self.hub.subscribe(run_id) as queue:
            record = self.store.get_run(run_id) or record  # read after subscribing: no gap
            steps = self.store.steps(run_id)
            redactor = self._redactor(token, record, workflow, steps)
            seen: set[tuple[str, str, int]] = set()
            yield (
                "run_started",
                self._shown(
                    redactor,
                    {
                        "run_id": run_id,
                        "workflow": record.workflow,
                        "workflow_version": record.workflow_version,
                        "status": record.status,
                        "input": dict(record.input),
                        "ts": record.started,
                        "batch_id": record.batch_id,
                        "item_key": record.item_key,
                    },
                ),
            )
            for s in steps:
                name = {"finished": "step_finished", "escalated": "step_escalated"}.get(
                    s.status, f"step_{s.status}"
                )
                seen.add((name, s.step, s.attempt))
                shown, hidden = redactor.step_output(s.step, s.output)
                yield (
                    name,
                    {
                        "run_id": run_id,
                        "step": s.step,
                        "agent_type": s.agent_type,
                        "attempt": s.attempt,
                        "status": s.status,
                        "actor": s.actor,
                        "output": shown,
                        "redacted": hidden,
                        "confidence": s.confidence,
                        "error": s.error,
                        "started": s.started,
                        "ended": s.ended,
                        "replayed": True,
                    },
                )
            if record.status in FINAL:
                output, _ = redactor.mask(record.output)
                yield (
                    "run_finished",
                    {
                        "run_id": run_id,
                        "status": record.status,
                        "output": output,
                        "error": record.error,
                        "ts": record.ended,
                    },
                )
                return
            while True:
                event = await queue.get()
                if event is None:
                    return
                name = NAMES[type(event)]
                key = (name, getattr(event, "step", ""), getattr(event, "attempt", 1))
                if name in ("step_finished", "step_escalated") and key in seen:
                    continue
                data = event_json(event)
                if isinstance(event, ev.StepFinished | ev.StepEscalated):
                    redactor.see(event.step, event.output)
                    data["output"], data["redacted"] = redactor.step_output(
                        event.step, event.output
                    )
                yield name, self._shown(redactor, data)
                if isinstance(event, ev.RunFinished):
                    return

    @staticmethod
    def _shown(redactor: Redactor, data: dict[str, Any]) -> dict[str, Any]:
        for field in ("input", "output"):
            value = data.get(field)
            if isinstance(value, Mapping) and not data.get("redacted"):
                data[field], _ = redactor.mask(value)
        return data

    # ---- reviews ------------------------------------------------------------------------------

    def list_reviews(
        self,
        token: Token,
        *,
        workflow: str | None = None,
        status: str | None = "pending",
        limit: int = 100,
    ) -> list[ReviewView]:
        names = self._readable(token, workflow)
        reviews = self.store.reviews(status=status, workflows=names, limit=limit)
        return [self._review_view(token, review) for review in reviews]

    def get_review(self, token: Token, review_id: str) -> ReviewView:
        return self._review_view(token, self._readable_review(token, review_id))

    def _readable_review(self, token: Token, review_id: str) -> ReviewRecord:
        review = self.store.get_review(review_id)
        if review is None:
            raise NotFound(f"no review {review_id!r}")
        self.check(token, "read", review.workflow)
        return review

    def _claim(self, review_id: str) -> tuple[str | None, str | None, float | None]:
        """``(claimed_by, token_id, claimed)`` of a live claim, or Nones."""
        claim = self.store.review_claim(review_id)
        if claim is None or claim.claimed < time.time() - self.claim_seconds:
            return None, None, None
        return claim.claimed_by, claim.token_id, claim.claimed

    def claim_review(self, token: Token, review_id: str) -> ReviewView:
        """Take a pending review: others see it claimed until it is decided or released (or
        ``claim_seconds`` pass)."""
        review = self._readable_review(token, review_id)
        self.check(token, "review", review.workflow)
        if review.status != "pending":
            raise Conflict(f"review {review_id} is already {review.status}")
        by, token_id, _ = self._claim(review_id)
        if by is not None and token_id != token.token_id:
            raise Conflict(f"review {review_id} is claimed by {by}")
        self.store.claim_review(review_id, token.name, token.token_id, time.time())
        return self._review_view(token, review)

    def release_review(self, token: Token, review_id: str) -> ReviewView:
        review = self._readable_review(token, review_id)
        self.check(token, "review", review.workflow)
        by, token_id, _ = self._claim(review_id)
        if by is not None and token_id != token.token_id and not token.allows("register", None):
            raise Conflict(f"review {review_id} is claimed by {by}, not by you")
        self.store.release_review(review_id)
        return self._review_view(token, review)

    async def decide(
        self,
        token: Token,
        review_id: str,
        decision: Literal["approve", "correct"],
        output: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Record the decision and resume the run at once (in the worker pool). Returns when
        the decision is recorded; the run goes on in the background."""
        review = self._readable_review(token, review_id)
        self.check(token, "review", review.workflow)
        if review.status != "pending":
            raise Conflict(f"review {review_id} is already {review.status} (by {review.reviewer})")
        by, token_id, _ = self._claim(review_id)
        if by is not None and token_id != token.token_id:
            raise Conflict(f"review {review_id} is claimed by {by}")
        parking = self.pool.tasks.get(review.run_id)
        if parking is not None:  # the task that parked the run is returning
            await asyncio.wait({parking}, timeout=5)
        record = self.store.get_run(review.run_id)
        if record is None or record.status != "waiting_review" or review.run_id in self.pool.tasks:
            raise Conflict(f"run {review.run_id} is not waiting for this review")
        workflow = self._workflow_of(record)
        if workflow is None:
            raise Conflict(f"run {review.run_id}'s workflow version is not registered here")
        decided = asyncio.get_running_loop().create_future()

        class _Watch:
            def handle(self, event: ev.Event) -> None:
                if (
                    isinstance(event, ev.ReviewDecided)
                    and event.run_id == review.run_id
                    and event.step == review.step
                    and not decided.done()
                ):
                    decided.set_result(None)

        watch = _Watch()

        async def job(runner: Runner) -> RunResult:
            runner.bus.subscribe(watch)
            try:
                return await runner.decide(review.run_id, review.step, decision, output, token.name)
            finally:
                runner.bus.unsubscribe(watch)

        self._own(review.run_id, workflow, token)
        task = self.pool.submit(review.run_id, workflow, job, _principal(token))
        await asyncio.wait({task, decided}, return_when=asyncio.FIRST_COMPLETED)
        if not decided.done():
            decided.cancel()
            if task.cancelled() or task.exception() is not None or task.result() is None:
                raise Conflict(f"the decision on review {review_id} could not be recorded")
        self.store.flush()
        self.store.release_review(review_id)
        return Decision(
            review=self.get_review(token, review_id), run=self.get_run(token, review.run_id)
        )

    def _review_view(self, token: Token, review: ReviewRecord) -> ReviewView:
        record = self.store.get_run(review.run_id)
        workflow = self._workflow_of(record) if record else None
        redactor = (
            self._redactor(token, record, workflow, None) if record else Redactor((), {}, None)
        )
        shown_input, hidden_in = redactor.mask(review.input)
        shown_output, hidden_out = redactor.step_output(review.step, review.output)
        decided_output, _ = redactor.step_output(review.step, review.decided_output)
        by, _, claimed = self._claim(review.review_id)
        instructions, show = None, []
        if workflow is not None:
            for agent in workflow.agents:
                if agent.name == review.step:
                    instructions = getattr(agent, "instructions", None)
                    show = [str(f) for f in getattr(agent, "show", None) or []]
        return ReviewView(
            review_id=review.review_id,
            run_id=review.run_id,
            step=review.step,
            workflow=review.workflow,
            status=review.status,
            reason=review.reason,
            input=shown_input or {},
            output=shown_output or {},
            redacted=hidden_in or hidden_out,
            confidence=review.confidence,
            decision=review.decision,
            decided_output=decided_output,
            reviewer=review.reviewer,
            created=review.created,
            decided=review.decided,
            claimed_by=by if review.status == "pending" else None,
            claimed=claimed if review.status == "pending" else None,
            instructions=instructions,
            show=show,
        )

    # ---- feedback and figures -----------------------------------------------------------------

    def add_feedback(self, token: Token, body: FeedbackIn) -> FeedbackView:
        self.check(token, "feedback", body.workflow)
        self._require_latest(body.workflow)
        if body.run_id is not None:
            run = self._readable_run(token, body.run_id)
            if run.workflow != body.workflow:
                raise Conflict(f"run {body.run_id} belongs to workflow {run.workflow!r}")
        self.store.add_feedback(
            body.workflow, body.label, run_id=body.run_id, step=body.step, item_key=body.item_key
        )
        newest = self.store.feedback(body.workflow)[-1]
        return FeedbackView(**newest)

    def list_feedback(self, token: Token, workflow: str) -> list[FeedbackView]:
        self.check(token, "read", workflow)
        self._require_latest(workflow)
        return [FeedbackView(**row) for row in self.store.feedback(workflow)]

    def workflow_metrics(self, token: Token, name: str) -> WorkflowMetrics:
        self.check(token, "read", name)
        workflow = self._require_latest(name)
        return workflow_metrics(self.store, name, [a.name for a in workflow.agents])

    def counts(self) -> tuple[int, int]:
        """``(queued, executing)`` in this server's pool now."""
        return len(self.pool.tasks) - len(self.pool.executing), len(self.pool.executing)


def _principal(token: Token | None) -> Principal | None:
    return Principal(token.token_id, token.name, token.team) if token else None


def _resume_job(run_id: str) -> Any:
    async def job(runner: Runner) -> RunResult:
        return await runner.resume(run_id)

    return job
