"""The server's worker pool: one open Runner per workflow version, at most ``workers`` runs
executing at once (asyncio tasks), each under the principal that submitted it.

Every runner writes to the one shared store, so the service reads what the runners wrote at
once; a runner never closes a store it was given: the server closes it, last. On shutdown
the store stops listening before the tasks are cancelled: an interrupted run
stays ``running`` in the store and the next server resumes it (its in-flight steps run again).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from relayflow.core import events as ev
from relayflow.govern.principal import Principal, current_principal
from relayflow.scrub import get_logger, scrub

if TYPE_CHECKING:
    from relayflow.engine.runner import Runner, RunResult
    from relayflow.schema.workflow import Workflow
    from relayflow.store.protocol import RunStore

log = get_logger("relayflow.server")

Job = Callable[["Runner"], Awaitable["RunResult"]]


class WorkerPool:
    def __init__(self, store: RunStore, consumers: Sequence[ev.Consumer], workers: int) -> None:
        self.store = store
        self._consumers = list(consumers)
        self._slots = asyncio.Semaphore(max(1, workers))
        self._runners: dict[tuple[str, str], Runner] = {}
        self._starting: dict[tuple[str, str], asyncio.Lock] = {}
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        #: runs whose task holds a slot now (the others wait for one)
        self.executing: set[str] = set()
        self._closing = False

    async def runner(self, workflow: Workflow) -> Runner:
        """The open runner of this workflow version (started on first use)."""
        from relayflow.engine.factory import build_runner

        key = (workflow.name, workflow.version)
        lock = self._starting.setdefault(key, asyncio.Lock())
        async with lock:
            runner = self._runners.get(key)
            if runner is None:
                runner = build_runner(workflow, store=self.store, consumers=self._consumers)
                await runner.start()
                self._runners[key] = runner
            return runner

    def submit(
        self, run_id: str, workflow: Workflow, job: Job, principal: Principal | None
    ) -> asyncio.Task[Any]:
        """Execute ``job`` on the workflow's runner when a slot frees up."""
        task = asyncio.get_running_loop().create_task(
            self._execute(run_id, workflow, job, principal), name=f"run {run_id}"
        )
        self.tasks[run_id] = task
        task.add_done_callback(lambda t: self._done(run_id, t))
        return task

    def _done(self, run_id: str, task: asyncio.Task[Any]) -> None:
        if self.tasks.get(run_id) is task:
            del self.tasks[run_id]

    async def _execute(
        self, run_id: str, workflow: Workflow, job: Job, principal: Principal | None
    ) -> RunResult | None:
        async with self._slots:
            self.executing.add(run_id)
            current_principal.set(principal)  # this task's own context: no reset needed
            try:
                return await job(await self.runner(workflow))
            except asyncio.CancelledError:
                if not self._closing:
                    self.finish(run_id, "cancelled", "cancelled")
                raise
            except Exception as exc:  # a broken workflow or store: the run fails, the pool goes on
                log.exception("run %s could not execute", run_id)
                if not self._closing:
                    self.finish(run_id, "failed", scrub(f"{type(exc).__name__}: {exc}"))
                return None
            finally:
                self.executing.discard(run_id)

    def finish(self, run_id: str, status: ev.RunStatus, error: str) -> None:
        """Record a run's end that its runner did not record (cancelled before it started, or
        a failure outside any step), unless the store already has a final status."""
        record = self.store.get_run(run_id)
        if record is None or record.status in ("succeeded", "failed", "cancelled"):
            return
        event = ev.RunFinished(
            run_id=run_id, status=status, output=None, error=error, ts=time.time()
        )
        for consumer in (self.store, *self._consumers):
            consumer.handle(event)
        self.store.flush()

    async def cancel(self, run_id: str) -> bool:
        """Cancel the run's task; True when there was one."""
        task = self.tasks.get(run_id)
        if task is None:
            return False
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return True

    async def close(self) -> None:
        """Stop every run without recording it as cancelled (the next server resumes them),
        then close the runners."""
        self._closing = True
        for runner in self._runners.values():
            with contextlib.suppress(ValueError):
                runner.bus.unsubscribe(self.store)
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for runner in self._runners.values():
            try:
                await runner.close()
            except Exception:  # closing one runner must not keep the others open
                log.exception("closing the runner of %s failed", runner.workflow.name)
        self._runners.clear()
