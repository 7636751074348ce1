"""The runner: carries each run's handoff through the plan, step by step, and tells the event
stream everything that happens. It never writes to a store or a screen itself."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from relayflow.agents.base import BuildContext, InlineRun
from relayflow.core import events as ev
from relayflow.core.handoff import Handoff, LineageEntry, merge_handoffs
from relayflow.core.ids import new_id
from relayflow.core.result import NO_USAGE, Result, StepInfo, Usage
from relayflow.core.result import FinalStatus as FinalStatus
from relayflow.core.result import RunResult as RunResult
from relayflow.core.retry import backoff_delay
from relayflow.engine.cache import CachePolicy, KeyMaker, cache_policy
from relayflow.engine.executor import Executor, LocalExecutor
from relayflow.engine.plan import Node, Plan, build_plan, reviewers_downstream
from relayflow.errors import AccessDenied, BudgetExceeded, Conflict, StoreError
from relayflow.schema.workflow import Workflow
from relayflow.scrub import SecretScrubber, remember, url_secrets
from relayflow.spec.secrets import workflow_secrets

if TYPE_CHECKING:
    from relayflow.consumers.base import ConfiguredConsumer
    from relayflow.engine.batch import Item
    from relayflow.store.cache import CachedStep
    from relayflow.store.protocol import RunStore, StepCacheStore


def _step_failed(
    run_id: str, node: Node, attempt: int, error: str, *, will_retry: bool, usage: Usage = NO_USAGE
) -> ev.StepFailed:
    """The event of a failed attempt (an exception, a ``fail`` verdict, a ``retry`` verdict)."""
    return ev.StepFailed(
        run_id=run_id,
        step=node.name,
        attempt=attempt,
        error=error,
        will_retry=will_retry,
        ts=time.time(),
        usage=usage,
    )


class _Failure(NamedTuple):
    """An attempt that raised: the error as the events and the run record show it, and whether
    it ends the step at once (no retry can help: a budget or an access denial)."""

    error: str
    final: bool = False


def _failure(exc: Exception, timeout: float | None, scrub: SecretScrubber) -> _Failure:
    if timeout is not None and isinstance(exc, TimeoutError):
        return _Failure(f"timed out after {timeout:g} s")
    # the error becomes an event, a stored row and a printed line: no credential goes with it
    # (a provider may echo the API key it was sent)
    error = scrub.text(f"{type(exc).__name__}: {exc}")
    return _Failure(error, isinstance(exc, BudgetExceeded | AccessDenied))


@dataclass(frozen=True, slots=True)
class _Stop:
    status: Literal["failed", "waiting_review"]
    step: str
    error: str | None


class Runner:
    """Executes runs of one workflow. Build it with ``relayflow.build_runner`` (engine/factory.py),
    which also attaches the workflow's configured consumers; use it as ``async with``.

    ``store`` is a URL or path of the durable store (SQLite/PostgreSQL), a ``RunStore``
    (store/protocol.py), or None for in-memory runs. A store opened here from a URL is closed
    by ``close``; a store given is the caller's to close. ``consumers`` receive every event;
    ``owned`` receive them too, and are closed with the runner (the factory's configured
    consumers).
    ``use_cache=False`` runs every step even where the workflow allows the step cache.
    """

    def __init__(
        self,
        workflow: Workflow,
        *,
        store: str | RunStore | None = None,
        consumers: Sequence[ev.Consumer] = (),
        owned: Sequence[ConfiguredConsumer] = (),
        executor: Executor | None = None,
        max_threads: int | None = None,
        use_cache: bool = True,
    ) -> None:
        self.workflow = workflow
        self._use_cache = use_cache
        self._store_arg = store
        self.store: RunStore | None = None
        self._cache: StepCacheStore | None = None
        #: whether ``store`` was opened here (from a URL), so that ``close`` closes it
        self._owns_store = False
        self.bus = ev.EventBus([*consumers, *owned])
        self._owned = tuple(owned)
        self.executor: Executor = executor or LocalExecutor(max_threads)
        self._plan: Plan | None = None
        self._versions: list[Mapping[str, str]] = []
        self._entries: list[LineageEntry] = []
        self._policies: list[CachePolicy | None] = []
        self._keys: list[KeyMaker | None] = []
        self._inline: list[InlineRun | None] = []
        self._scrub = SecretScrubber()
        #: whether any secret is configured (a plain attribute: tested on every step)
        self._scrubbing = False

    @property
    def plan(self) -> Plan:
        if self._plan is None:
            raise Conflict("the runner is not started: use `async with build_runner(...)`")
        return self._plan

    async def __aenter__(self) -> Runner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        wf = self.workflow
        ctx = BuildContext(
            base_dir=wf.base_dir,
            workflow_file=wf.file,
            get_provider=self._provider,
            reviewers_downstream=reviewers_downstream(wf.agents, wf.depends_on),
        )
        if isinstance(self._store_arg, str):
            from relayflow.store.sql_store import SqlStore

            self.store = SqlStore(self._store_arg)
            self._owns_store = True
        else:
            self.store = self._store_arg
        url = self.store.url if self.store is not None else None
        ctx = dataclasses.replace(ctx, store_url=url, workflow=wf, emit=self.bus.emit)
        if self.store is not None:
            self.bus.subscribe(self.store)
        # built once per runner; with no secret configured, scrubbing data is one truth test
        self._scrub = scrub = remember(workflow_secrets(wf) | url_secrets(url))
        self._scrubbing = bool(scrub)
        plan = build_plan(wf, ctx)
        await self.executor.start()
        for node in plan.nodes:
            await node.agent.prepare()
        self._versions = [scrub.data(dict(node.agent.versions())) for node in plan.nodes]
        self._cache = self.store.cache if self._use_cache and self.store is not None else None
        self._policies = [
            cache_policy(node.config, wf.spec.cache) if self._cache is not None else None
            for node in plan.nodes
        ]
        self._keys = [
            KeyMaker(node.config, self._versions[node.index], self._model_version(node.config))
            if self._policies[node.index] is not None
            else None
            for node in plan.nodes
        ]
        # steps the executor runs on this loop are called directly, without the general path's
        # coroutine (cached steps look up first; a timeout needs the general path)
        self._inline = [
            self.executor.inline(node)
            if self._policies[node.index] is None and node.config.timeout is None
            else None
            for node in plan.nodes
        ]
        # the lineage entry of a step whose versions are all static is the same every time
        self._entries = [
            LineageEntry(node.name, node.agent_type, self._versions[node.index])
            for node in plan.nodes
        ]
        self._plan = plan

    def _model_version(self, config: Any) -> Callable[[], str] | None:
        """The version of the model behind an inference step, asked at each lookup: a model
        file replaced in place (a promotion) changes the cache key."""
        alias = getattr(config, "model", None)
        if not isinstance(alias, str):
            return None
        return lambda: f"{alias}={self._provider(alias).version}"

    def _provider(self, alias: str) -> Any:
        from relayflow.providers.registry import build_provider

        return build_provider(alias, self.workflow.spec.models.get(alias), self.workflow.base_dir)

    async def close(self) -> None:
        try:
            if self._plan is not None:
                for node in self._plan.nodes:
                    await node.agent.close()
            await self.executor.shutdown()
        finally:
            try:
                for consumer in self._owned:
                    consumer.close()
            finally:
                if self.store is not None and self._owns_store:
                    self._owns_store = False
                    self.store.close()

    # ---- one run ----------------------------------------------------------------------------

    def run(
        self,
        data: Mapping[str, Any],
        *,
        run_id: str | None = None,
        batch_id: str | None = None,
        item_key: str | None = None,
    ) -> Coroutine[Any, Any, RunResult]:
        """Carry ``data`` through the workflow: ``await runner.run(data)``. With a batch source
        in the plan, ``data`` is taken as one record of that source.

        A plain method that starts the run (``RunStarted``) and hands back the coroutine that
        drives it: one coroutine less per run than an ``async def`` around it."""
        plan = self._plan or self.plan
        run_id = run_id or new_id()
        now = time.time()
        emit = self.bus.emit
        if self.bus.consumers:
            emit(
                ev.RunStarted(
                    run_id=run_id,
                    workflow=self.workflow.name,
                    workflow_version=self.workflow.version,
                    input=data,
                    ts=now,
                    batch_id=batch_id,
                    item_key=item_key,
                )
            )
        handoff = Handoff(data, (), run_id)
        finished: dict[int, Handoff] = {}
        if plan.source is not None:
            node = plan.nodes[plan.source]
            versions = {**self._versions[node.index], "item": item_key or ""}
            # Not awaited: nothing ran, the record is the run's input; it is committed with
            # the next step.
            emit(
                ev.StepFinished(
                    run_id=run_id,
                    step=node.name,
                    agent_type=node.agent_type,
                    attempt=1,
                    started=now,
                    ended=now,
                    output=data,
                    confidence=None,
                    usage=NO_USAGE,
                    versions=versions,
                )
            )
            finished[node.index] = handoff.followed_by(
                data, LineageEntry(node.name, node.agent_type, versions)
            )
        return self._drive(run_id, handoff, finished, item_key)

    async def resume(self, run_id: str) -> RunResult:
        """Continue a run from its first unfinished step; finished steps are never run again."""
        store = self._require_store()
        record = store.get_run(run_id)
        if record is None:
            raise StoreError(f"no run {run_id!r} in {store.url}; see `relayflow runs list`")
        if record.status == "succeeded":
            return RunResult(run_id, "succeeded", record.output, item_key=record.item_key)
        steps = {s.step: s for s in store.steps(run_id)}
        if record.status == "waiting_review" and steps.get(record.waiting_step or "") is not None:
            waiting = steps[record.waiting_step or ""]
            if waiting.status == "escalated":
                return RunResult(
                    run_id, "waiting_review", None, None, waiting.step, record.item_key
                )
        plan = self.plan
        handoff = Handoff(record.input, run_id=run_id)
        finished: dict[int, Handoff] = {}
        inputs: dict[int, Handoff] = {}
        for index in plan.order:
            node = plan.nodes[index]
            step = steps.get(node.name)
            if step is None or step.status != "finished" or step.output is None:
                continue
            upstream = [finished[d] for d in node.deps if d in finished]
            if len(upstream) != len(node.deps):
                continue
            before = [inputs.get(d) for d in node.deps]
            base = merge_handoffs(upstream, before) if upstream else handoff
            inputs[index] = base
            finished[index] = base.followed_by(
                step.output,
                LineageEntry(node.name, node.agent_type, step.versions, step.confidence),
                step.confidence,
                step.flags,
            )
        self.bus.emit(
            ev.RunStarted(
                run_id=run_id,
                workflow=record.workflow,
                workflow_version=record.workflow_version,
                input=record.input,
                ts=time.time(),
                batch_id=record.batch_id,
                item_key=record.item_key,
            )
        )
        return await self._drive(run_id, handoff, finished, record.item_key)

    async def decide(
        self,
        run_id: str,
        step: str,
        decision: Literal["approve", "correct"],
        output: Mapping[str, Any] | None = None,
        reviewer: str = "reviewer",
    ) -> RunResult:
        """Record a person's decision on an escalated step and resume the run at once."""
        store = self._require_store()
        record = store.get_run(run_id)
        escalated = {s.step: s for s in store.steps(run_id)}.get(step)
        if record is None or escalated is None or escalated.status != "escalated":
            raise StoreError(f"run {run_id} has no step {step!r} waiting for review")
        decided = dict(escalated.output or {}) if decision == "approve" else dict(output or {})
        node = self.plan.node(step)
        now = time.time()
        waits = self.bus.emit(
            ev.ReviewDecided(
                run_id=run_id,
                step=step,
                decision=decision,
                output=decided,
                reviewer=reviewer,
                ts=now,
                workflow=record.workflow,
                item_key=record.item_key,
            )
        )
        if waits:
            await ev.settle(waits)
        waits = self.bus.emit(
            ev.StepFinished(
                run_id=run_id,
                step=step,
                agent_type=node.agent_type,
                attempt=escalated.attempt,
                started=escalated.started or now,
                ended=now,
                output=decided,
                confidence=1.0,
                usage=NO_USAGE,
                versions={**escalated.versions, "reviewer": reviewer},
                actor="human",
            )
        )
        if waits:
            await ev.settle(waits)
        return await self.resume(run_id)

    def _require_store(self) -> RunStore:
        if self.store is None:
            raise StoreError("this needs a store: pass store='runs.db' (or a database URL)")
        return self.store

    async def _drive(
        self, run_id: str, handoff: Handoff, finished: dict[int, Handoff], item_key: str | None
    ) -> RunResult:
        plan = self._plan or self.plan
        outcome: Mapping[str, Any] | _Stop
        try:
            if plan.linear:
                # The steps in a line, driven here rather than in a coroutine of their own. A
                # step the executor runs inline is called directly; when it returns its data
                # and nobody listens, the next handoff is built right here. Anything else
                # (events to send, a verdict, an error to retry) goes to the general path.
                nodes = plan.nodes
                inline = self._inline
                entries = self._entries
                bus = self.bus
                consumers = bus.consumers
                for index in plan.order:
                    if finished:
                        done = finished.get(index)
                        if done is not None:
                            handoff = done
                            continue
                    node = nodes[index]
                    run = inline[index]
                    if run is None:
                        step = await self._step(node, handoff, run_id)
                    else:
                        started = 0.0
                        if consumers:
                            started = time.time()
                            bus.emit(
                                ev.StepStarted(run_id=run_id, step=node.name, attempt=1, ts=started)
                            )
                        out: Any
                        try:
                            out = run(handoff)
                            if type(out) is not dict and type(out) is not Result:
                                out = await out  # an async def transform's coroutine
                        except asyncio.CancelledError:
                            bus.emit(
                                ev.StepCancelled(run_id=run_id, step=node.name, ts=time.time())
                            )
                            raise
                        except Exception as exc:  # retried (or failed) by the general path
                            out = _failure(exc, None, self._scrub)
                        if type(out) is dict:
                            if not consumers:
                                handoff = Handoff(
                                    out,
                                    (*handoff.lineage, entries[index]),
                                    run_id,
                                    handoff.confidence,
                                    handoff.flags,
                                )
                                continue
                            out = Result(out)
                        if type(out) is Result and out.verdict == "ok":
                            handoff, waits = self._finished(
                                node, handoff, run_id, 1, started, out, None
                            )
                            if waits:
                                await ev.settle(waits)
                            continue
                        step = await self._step(node, handoff, run_id, (started, out))
                    if type(step) is _Stop:
                        outcome = step
                        break
                    handoff = step  # type: ignore[assignment]
                else:
                    outcome = handoff.data
            else:
                outcome = await self._drive_graph(run_id, handoff, finished)
            if self._scrubbing and not isinstance(outcome, _Stop):
                outcome = self._scrub.data(outcome)  # the inline path's last data was not seen
        except asyncio.CancelledError:
            self.bus.emit(
                ev.RunFinished(
                    run_id=run_id,
                    status="cancelled",
                    output=None,
                    error="cancelled",
                    ts=time.time(),
                )
            )
            raise
        if isinstance(outcome, _Stop):
            if outcome.status == "waiting_review":
                return RunResult(
                    run_id, "waiting_review", None, outcome.error, outcome.step, item_key
                )
            waits = self.bus.emit(
                ev.RunFinished(
                    run_id=run_id, status="failed", output=None, error=outcome.error, ts=time.time()
                )
            )
            if waits:
                await ev.settle(waits)
            return RunResult(run_id, "failed", None, outcome.error, outcome.step, item_key)
        if self.bus.consumers:
            waits = self.bus.emit(
                ev.RunFinished(
                    run_id=run_id, status="succeeded", output=outcome, error=None, ts=time.time()
                )
            )
            if waits:
                await ev.settle(waits)
        return RunResult(run_id, "succeeded", outcome, None, None, item_key)

    async def _drive_graph(
        self, run_id: str, start: Handoff, finished: dict[int, Handoff]
    ) -> Mapping[str, Any] | _Stop:
        """Start each step as soon as all its upstream steps have finished."""
        plan = self.plan
        running: dict[asyncio.Task[Handoff | _Stop], int] = {}
        inputs: dict[int, Handoff] = {}
        stop: _Stop | None = None

        def launch_ready() -> None:
            for index in plan.order:
                node = plan.nodes[index]
                if index in finished or index in running.values():
                    continue
                if all(d in finished for d in node.deps):
                    upstream = [finished[d] for d in node.deps]
                    before = [inputs.get(d) for d in node.deps]
                    base = merge_handoffs(upstream, before) if upstream else start
                    inputs[index] = base
                    task = asyncio.ensure_future(self._step(node, base, run_id))
                    running[task] = index

        launch_ready()
        try:
            while running:
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    index = running.pop(task)
                    outcome = task.result()
                    if isinstance(outcome, _Stop):
                        if stop is None or outcome.status == "failed":
                            stop = outcome
                    else:
                        finished[index] = outcome
                if stop is None:
                    launch_ready()
        except asyncio.CancelledError:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        if stop is not None:
            return stop
        sinks = [finished[i] for i in plan.sinks]
        return merge_handoffs(sinks, [inputs.get(i) for i in plan.sinks]).data

    # ---- one step ---------------------------------------------------------------------------

    async def _from_cache(
        self, node: Node, handoff: Handoff, run_id: str, hit: CachedStep
    ) -> Handoff:
        """A step answered from the step cache: nothing runs and nothing is spent."""
        versions = {**hit.versions, "cache": "hit"}
        now = time.time()
        waits = self.bus.emit(
            ev.StepFinished(
                run_id=run_id,
                step=node.name,
                agent_type=node.agent_type,
                attempt=1,
                started=now,
                ended=now,
                output=hit.output,
                confidence=hit.confidence,
                usage=NO_USAGE,
                versions=versions,
                flags=hit.flags,
                cached=True,
            )
        )
        if waits:
            await ev.settle(waits)
        entry = LineageEntry(node.name, node.agent_type, versions, hit.confidence)
        return handoff.followed_by(hit.output, entry, hit.confidence, hit.flags)

    def _finished(
        self,
        node: Node,
        handoff: Handoff,
        run_id: str,
        attempt: int,
        started: float,
        result: Result,
        key: str | None,
    ) -> tuple[Handoff, Sequence[Awaitable[None]]]:
        """Record a step that finished well: cache it, tell the event stream, and build the
        next handoff. Returns it with what durable consumers ask to be awaited first."""
        if self._scrubbing:
            result = self._scrubbed(result)
        static = self._versions[node.index]
        versions = {**static, **result.versions} if result.versions else static
        cache = self._cache
        if key is not None and cache is not None:  # a key is made only where there is a cache
            cache.put(
                key,
                workflow=self.workflow.name,
                step=node.name,
                output=result.data,
                confidence=result.confidence,
                versions=versions,
                flags=result.flags,
                usage=result.usage,
                ttl=self._policies[node.index].ttl,  # type: ignore[union-attr]
            )
            versions = {**versions, "cache": "miss"}
        waits: Sequence[Awaitable[None]] = ()
        if self.bus.consumers:
            waits = self.bus.emit(
                ev.StepFinished(
                    run_id=run_id,
                    step=node.name,
                    agent_type=node.agent_type,
                    attempt=attempt,
                    started=started,
                    ended=time.time(),
                    output=result.data,
                    confidence=result.confidence,
                    usage=result.usage,
                    versions=versions,
                    flags=result.flags,
                )
            )
        entry = (
            self._entries[node.index]
            if versions is static and result.confidence is None
            else LineageEntry(node.name, node.agent_type, versions, result.confidence)
        )
        return handoff.followed_by(result.data, entry, result.confidence, result.flags), waits

    def _scrubbed(self, result: Result) -> Result:
        """``result`` with configured secrets masked in what it records and hands on: a service
        may echo its token in its answer, and the step cache and the store must not keep it."""
        scrub = self._scrub
        return result._replace(
            data=scrub.data(result.data),
            reason=scrub.text(result.reason) if result.reason else result.reason,
            versions=scrub.data(result.versions),
            flags=scrub.data(result.flags),
        )

    async def _step(
        self,
        node: Node,
        handoff: Handoff,
        run_id: str,
        first: tuple[float, Result | _Failure] | None = None,
    ) -> Handoff | _Stop:
        """Execute one step with its retries, timeout and cache. ``first`` is the outcome of a
        first attempt already made inline (when it started, what it gave): the events, the
        verdict and any retries are then this method's work."""
        config = node.config
        retry = config.retry
        timeout = config.timeout
        bus = self.bus
        emit = bus.emit
        key = None
        keys = self._keys[node.index]
        cache = self._cache
        if keys is not None and cache is not None:
            key = keys.key(handoff.data)
            hit = cache.get(key)
            if hit is not None:
                return await self._from_cache(node, handoff, run_id, hit)
        attempt = 0
        while True:
            attempt += 1
            outcome: Result | _Failure
            if first is None:
                started = time.time()
                if bus.consumers:
                    emit(ev.StepStarted(run_id=run_id, step=node.name, attempt=attempt, ts=started))
                info = StepInfo(run_id, node.name, attempt)
                try:
                    if timeout is None:
                        outcome = await self.executor.execute(node, handoff, info)
                    else:
                        async with asyncio.timeout(timeout):
                            outcome = await self.executor.execute(node, handoff, info)
                except asyncio.CancelledError:
                    emit(ev.StepCancelled(run_id=run_id, step=node.name, ts=time.time()))
                    raise
                except Exception as exc:  # an agent's failure is a step outcome, not a crash
                    outcome = _failure(exc, timeout, self._scrub)
            else:
                started, outcome = first
                first = None
            if isinstance(outcome, _Failure):
                error = outcome.error
                if outcome.final:
                    waits = emit(_step_failed(run_id, node, attempt, error, will_retry=False))
                    if waits:
                        await ev.settle(waits)
                    return _Stop("failed", node.name, error)
            else:
                result = outcome
                verdict = result.verdict
                if verdict != "ok":
                    # a reason is shown and stored like an error
                    result = self._scrubbed(result)
                if verdict == "ok":
                    following, waits = self._finished(
                        node, handoff, run_id, attempt, started, result, key
                    )
                    if waits:
                        await ev.settle(waits)
                    return following
                if verdict == "escalate":
                    static = self._versions[node.index]
                    versions = {**static, **result.versions} if result.versions else static
                    waits = emit(
                        ev.StepEscalated(
                            run_id=run_id,
                            step=node.name,
                            agent_type=node.agent_type,
                            workflow=self.workflow.name,
                            reason=result.reason or "escalated",
                            input=handoff.data,
                            output=result.data,
                            confidence=result.confidence,
                            usage=result.usage,
                            versions=versions,
                            ts=time.time(),
                        )
                    )
                    if waits:
                        await ev.settle(waits)
                    return _Stop("waiting_review", node.name, result.reason)
                if verdict == "fail":
                    error = result.reason or "the agent failed the item"
                    waits = emit(
                        _step_failed(
                            run_id, node, attempt, error, will_retry=False, usage=result.usage
                        )
                    )
                    if waits:
                        await ev.settle(waits)
                    return _Stop("failed", node.name, error)
                error = f"asked to retry: {result.reason}"
            will_retry = attempt < retry.attempts
            waits = emit(_step_failed(run_id, node, attempt, error, will_retry=will_retry))
            if not will_retry:
                if waits:
                    await ev.settle(waits)
                return _Stop("failed", node.name, f"{node.name}: {error}")
            await asyncio.sleep(backoff_delay(retry, attempt))

    # ---- batches ----------------------------------------------------------------------------

    def run_batch(
        self,
        items: Iterable[Item] | AsyncIterable[Item] | None = None,
        *,
        concurrency: int = 8,
        batch_id: str | None = None,
        inputs_name: str | None = None,
        max_bad_records: int | None = None,
    ) -> AsyncGenerator[RunResult, None]:
        """Run one workflow per item (or per record of the plan's source), at most
        ``concurrency`` at once, yielding results as runs end; bad records are recorded and
        skipped, up to ``max_bad_records`` (see engine/batch.py)."""
        from relayflow.engine.batch import run_batch

        return run_batch(
            self,
            items,
            concurrency=concurrency,
            batch_id=batch_id,
            inputs_name=inputs_name,
            max_bad_records=max_bad_records,
        )
