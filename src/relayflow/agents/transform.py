"""The transform agent: calls a function from the user's Python script on each record."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import inspect
import itertools
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from relayflow.agents.base import Agent, BuildContext, FileRef, InlineRun
from relayflow.agents.transform_config import TransformConfig as TransformConfig
from relayflow.core.result import Result, StepInfo
from relayflow.errors import AgentError
from relayflow.schema.file import AgentConfig

if TYPE_CHECKING:
    from relayflow.agents.checks import AgentCheck
    from relayflow.core.handoff import Handoff
    from relayflow.errors import Problem

_module_numbers = itertools.count(1)


def script_version(source: bytes) -> str:
    """The first 12 hex digits of the SHA-256 of the script: the version of a transform."""
    return hashlib.sha256(source).hexdigest()[:12]


class TransformAgent(Agent):
    """Run ``function(record) -> dict`` (``def`` or ``async def``) from ``script``.

    The script is imported once, in ``prepare``, under a module name of its own. ``run_in``
    decides where a sync function runs: ``auto`` and ``thread`` use a worker thread, ``inline``
    calls it on the event loop (for functions that take microseconds).
    """

    type_name: ClassVar[str] = "transform"
    Config: ClassVar[type[AgentConfig]] = TransformConfig
    cacheable: ClassVar[bool] = True
    config: TransformConfig

    @classmethod
    def files(cls, config: AgentConfig) -> list[FileRef]:
        assert isinstance(config, TransformConfig)  # noqa: S101 - narrows the type; the registry pairs each type with its Config
        return [FileRef("script", config.script, code=True)]

    @classmethod
    def validate(cls, config: AgentConfig, check: AgentCheck) -> list[Problem]:
        from relayflow.agents.transform_config import script_problem

        assert isinstance(config, TransformConfig)  # noqa: S101 - narrows the type; the registry pairs each type with its Config
        problem = script_problem(config, check)
        return [] if problem is None else [problem]

    def __init__(self, config: AgentConfig, ctx: BuildContext) -> None:
        if not isinstance(config, TransformConfig):
            config = TransformConfig.model_validate(config.model_dump())
        super().__init__(config, ctx)
        self._fn: Callable[[dict[str, Any]], Any] | None = None
        self._is_async = False
        self._in_thread = False
        self._version = ""
        self._module_name = ""
        self._raised = ""

    def versions(self) -> Mapping[str, str]:
        return {"script": self._version} if self._version else {}

    async def prepare(self) -> None:
        if self._fn is not None:
            return
        cfg = self.config
        path = self.ctx.resolve(cfg.script)
        module = self._import(path)
        fn = getattr(module, cfg.function, None)
        if not callable(fn):
            self._forget()
            what = "is not a function" if fn is not None else "is not defined"
            raise AgentError(
                f"{path}: {cfg.function} {what} — define def {cfg.function}(record: dict) -> dict "
                "in the script, or set function: to the name it has"
            )
        is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            type(fn).__call__  # an object with an async __call__
        )
        if is_async and cfg.run_in == "thread":
            self._forget()
            raise AgentError(
                f"{path}: {cfg.function} is async def, which runs on the event loop — "
                "set run_in: auto (or make it a plain def to run it in a thread)"
            )
        self._fn = fn
        self._is_async = is_async
        self._in_thread = not is_async and cfg.run_in != "inline"
        self._raised = f"{cfg.script}: {cfg.function}() raised "

    def _import(self, path: Path) -> ModuleType:
        """Execute the script as a fresh module registered under a name of its own."""
        try:
            source = path.read_bytes()
        except OSError as exc:
            raise AgentError(
                f"cannot read transform script {path}: {exc.strerror or exc} — check script "
                "(relative paths start at the workflow file's folder)"
            ) from exc
        stem = re.sub(r"\W", "_", path.stem)
        name = f"relayflow_script_{next(_module_numbers)}_{stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None:
            raise AgentError(f"cannot import {path} — the script must be a .py file")
        module = importlib.util.module_from_spec(spec)
        # registered while it runs: dataclasses and pickle look a class's module up by name
        sys.modules[name] = module
        self._module_name = name
        try:
            # compile the bytes just hashed, so the version always matches the code that runs
            exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - running the workflow's own script is this agent's job
        except SyntaxError as exc:
            self._forget()
            raise AgentError(
                f"{path}:{exc.lineno}: syntax error: {exc.msg} — fix the script"
            ) from exc
        except Exception as exc:
            self._forget()
            raise AgentError(
                f"{path}: importing the script raised {type(exc).__name__}: {exc} — fix the "
                "script's top-level code"
            ) from exc
        self._version = script_version(source)
        return module

    def _forget(self) -> None:
        if self._module_name:
            sys.modules.pop(self._module_name, None)
            self._module_name = ""

    async def run(self, handoff: Handoff, step: StepInfo) -> Result:
        fn = self._fn
        if fn is None:
            await self.prepare()
            fn = self._fn
            assert fn is not None  # noqa: S101 - invariant: prepare() loaded it
        record = dict(handoff.data)
        try:
            if self._is_async:
                out = await fn(record)
            elif self._in_thread:
                out = await asyncio.to_thread(fn, record)
            else:
                out = fn(record)
            if type(out) is not dict and inspect.isawaitable(out):
                out = await out  # a plain def that hands back a coroutine
        except Exception as exc:
            raise AgentError(f"{self._raised}{type(exc).__name__}: {exc}") from exc
        return self._checked_now(out)

    def run_inline(self) -> InlineRun | None:
        # an async function's coroutine is handed to the runner to await
        if self._fn is None or self._in_thread:
            return None
        return self._run_inline

    def _run_inline(
        self, handoff: Handoff
    ) -> dict[str, Any] | Result | Awaitable[dict[str, Any] | Result]:
        fn = self._fn
        assert fn is not None  # noqa: S101 - run_inline hands this out only after prepare
        try:
            out = fn(dict(handoff.data))
        except Exception as exc:
            raise AgentError(f"{self._raised}{type(exc).__name__}: {exc}") from exc
        if type(out) is dict:
            return out
        if self._is_async or inspect.isawaitable(out):  # (a plain def may hand back one too)
            return self._checked(out)
        return self._checked_now(out)

    async def _checked(self, pending: Awaitable[Any]) -> dict[str, Any] | Result:
        try:
            out = await pending
        except Exception as exc:
            raise AgentError(f"{self._raised}{type(exc).__name__}: {exc}") from exc
        return out if type(out) is dict else self._checked_now(out)

    def _checked_now(self, out: Any) -> Result:
        if isinstance(out, dict):
            return Result(out)
        raise AgentError(
            f"{self.config.script}: {self.config.function}() returned "
            f"{type(out).__name__}, not a dict — return the new record as a dict"
        )

    async def close(self) -> None:
        self._forget()
        self._fn = None
