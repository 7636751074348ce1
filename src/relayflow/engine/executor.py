"""Where a step's agent code runs. The runner only calls ``Executor.execute``; a Ray executor
implements the same contract without the runner changing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from relayflow.agents.base import InlineRun
from relayflow.core.handoff import Handoff
from relayflow.core.result import Result, StepInfo
from relayflow.engine.plan import Node


class Executor(Protocol):
    async def start(self) -> None: ...

    def execute(self, node: Node, handoff: Handoff, step: StepInfo) -> Awaitable[Result]: ...

    def inline(self, node: Node) -> InlineRun | None:
        """The node's synchronous step function when this executor runs it on the runner's own
        event loop (see ``Agent.run_inline``); None sends every step through ``execute``."""
        ...

    async def shutdown(self) -> None: ...


class LocalExecutor:
    """Runs agents on this process's event loop; blocking work goes to a bounded thread pool
    (installed as the loop's default executor, which ``asyncio.to_thread`` uses)."""

    def __init__(self, max_threads: int | None = None) -> None:
        self._max_threads = max_threads
        self._pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        if self._max_threads is not None:
            self._pool = ThreadPoolExecutor(self._max_threads, thread_name_prefix="relayflow")
            asyncio.get_running_loop().set_default_executor(self._pool)

    def execute(self, node: Node, handoff: Handoff, step: StepInfo) -> Awaitable[Result]:
        # returns the agent's coroutine itself: one coroutine less per step on the hot path
        return node.agent.run(handoff, step)

    def inline(self, node: Node) -> InlineRun | None:
        return node.agent.run_inline()

    async def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
