"""The ``retrain`` agent: watches the target model's answers against the labels items carry (or a
reviewer gave) and starts a retraining job in the background when performance drops, on a
schedule, every ``every`` new labels (``new_labels``: reviews decided and labels added while
the workflow runs, so that a learned model improves during a long batch), or never
(``manual``: run ``relayflow retrain``). The payload passes through."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from relayflow.agents.base import Agent, BuildContext
from relayflow.core.result import Result, StepInfo
from relayflow.errors import AgentError, RelayflowError
from relayflow.schema.file import AgentConfig
from relayflow.scrub import get_logger

if TYPE_CHECKING:
    from relayflow.agents.checks import AgentCheck
    from relayflow.core.handoff import Handoff
    from relayflow.errors import Problem
    from relayflow.learn.data import Fields
    from relayflow.learn.drift import DriftMonitor
    from relayflow.learn.retrain import RetrainOutcome, RetrainRequest
    from relayflow.schema.workflow import Workflow
    from relayflow.store.database import Engine

log = get_logger("relayflow.retrain")

STORE_ENV = "RELAYFLOW_STORE"
#: the detector is checkpointed to the store after this many observations (and on alarms, close)
CHECKPOINT_EVERY = 25
_SCHEDULE = re.compile(
    r"^\s*(?:every\s+)?(\d+(?:\.\d+)?)\s*"
    r"(runs?|s|secs?|seconds?|m|mins?|minutes?|h|hours?|d|days?)?\s*$",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_schedule(text: str) -> tuple[str, float]:
    """``("runs", 100)`` for ``"every 100 runs"`` or ``"100"``; ``("seconds", 3600)`` for
    ``"1h"``, ``"60 minutes"``, ``"every 3600 s"``."""
    match = _SCHEDULE.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise AgentError(
            f"schedule {text!r} is not understood: write `every 500 runs`, `30 min`, `6h` or `1d`"
        )
    amount, unit = float(match.group(1)), (match.group(2) or "runs").lower()
    if unit.startswith("run"):
        return "runs", amount
    return "seconds", amount * _UNIT_SECONDS[unit[0]]


def store_location(ctx: BuildContext) -> str | None:
    """The run store the runner writes to (``BuildContext.store_url`` where the runner gives
    it), else ``$RELAYFLOW_STORE``; None means in-memory monitoring without retraining."""
    given = getattr(ctx, "store_url", None)
    return given if isinstance(given, str) and given else os.environ.get(STORE_ENV) or None


class RetrainConfig(AgentConfig):
    """Refit or re-prompt a model when its measured performance drops (see the retrain issue)."""

    trigger: Literal["performance_drop", "schedule", "new_labels", "manual"] = "performance_drop"
    target: str | None = None
    metric: str | None = None
    threshold: float | None = None
    schedule: str | None = None
    #: trigger: new_labels — refit after this many new labels (reviews decided, feedback added)
    every: int = Field(default=20, ge=1)
    #: a labelled file that every job learns from besides the store's labels (learned models)
    history: str | None = None


class RetrainAgent(Agent):
    """Observes, per run, the model's answer (``evaluate.prediction``) against the reference
    the item carries (``evaluate.reference``) or, for a reviewed run, the reviewer's answer;
    a `DriftMonitor` (river's ADWIN) decides when to retrain. The detector lives in this
    object and is checkpointed to the run store every 25 observations and at close.

    A retrain request adds ``retrain_requested: true`` and ``retrain_reason`` to the step's
    output and starts the job as a background task (its blocking part in a worker thread), so
    runs go on meanwhile; one job at a time; `close` waits for it. The store is the runner's
    (`store_location`); without one the request is flagged but no job runs. ``outcomes`` and
    ``errors`` keep what this process's jobs did; the registry keeps every version.
    """

    type_name: ClassVar[str] = "retrain"
    Config: ClassVar[type[AgentConfig]] = RetrainConfig
    runs_code: ClassVar[bool] = False
    config: RetrainConfig

    @classmethod
    def validate(cls, config: AgentConfig, check: AgentCheck) -> list[Problem]:
        assert isinstance(config, RetrainConfig)  # noqa: S101 - narrows the type; the registry pairs each type with its Config
        if config.trigger != "schedule":
            return []
        if config.schedule is None:
            return [
                check.problem(
                    "schedule",
                    "trigger: schedule needs a schedule",
                    "add `schedule: every 500 runs` (or `6h`, `30 min`, `1d`)",
                    at="trigger",
                )
            ]
        try:
            parse_schedule(config.schedule)
        except AgentError:
            return [
                check.problem(
                    "schedule",
                    f"{config.schedule[:60]!r} is not a schedule",
                    "write `every 500 runs`, `30 min`, `6h` or `1d`",
                )
            ]
        return []

    def __init__(self, config: AgentConfig, ctx: BuildContext) -> None:
        if not isinstance(config, RetrainConfig):
            config = RetrainConfig.model_validate(config.model_dump())
        super().__init__(config, ctx)
        self.outcomes: list[RetrainOutcome] = []
        self.errors: list[str] = []
        self._workflow: Workflow | None = None
        self._store: str | None = None
        self._engine: Engine | None = None
        self._monitor: DriftMonitor | None = None
        self._metric = "accuracy"
        self._saved_monitor: Any = None
        self._lock = asyncio.Lock()
        self._fields: Fields | None = None
        self._schedule: tuple[str, float] | None = None
        self._runs_since = 0
        self._last_retrain = time.time()
        #: new_labels: when the labels were last counted as used (store time, not a clock)
        self._labels_since = 0.0
        self._unsaved = 0
        self._job: asyncio.Task[None] | None = None

    @property
    def monitor(self) -> DriftMonitor | None:
        return self._monitor

    def versions(self) -> Mapping[str, str]:
        out: dict[str, str] = {"trigger": self.config.trigger}
        if self.config.trigger == "performance_drop":
            out["detector"] = "adwin"
        return out

    async def prepare(self) -> None:
        from relayflow.learn.data import Fields
        from relayflow.spec.loader import load_spec

        cfg = self.config
        if self.ctx.workflow_file is not None:
            self._workflow = await asyncio.to_thread(load_spec, self.ctx.workflow_file)
        evaluate = self._workflow.spec.evaluate if self._workflow is not None else None
        output = evaluate.prediction if evaluate is not None else self._target_output()
        self._fields = (
            Fields(output, evaluate.reference, evaluate.key) if evaluate else Fields(output)
        )
        if cfg.trigger == "schedule":
            if cfg.schedule is None:
                raise AgentError(
                    f"step {cfg.name}: trigger: schedule needs `schedule:` (e.g. `every 500 "
                    "runs` or `6h`)"
                )
            self._schedule = parse_schedule(cfg.schedule)
        if cfg.trigger == "performance_drop":
            if importlib.util.find_spec("river") is None:
                raise AgentError(
                    f"step {cfg.name}: trigger: performance_drop needs river for drift "
                    "detection: pip install river (or 'relayflow[examples]')"
                )
            self._metric = cfg.metric or (evaluate.metric if evaluate else "accuracy")
        self._store = store_location(self.ctx)
        if self._store is not None and cfg.trigger != "manual":
            from relayflow.store.checkpoints import load_state
            from relayflow.store.database import open_database

            self._engine = await asyncio.to_thread(open_database, self._store, create=True)
            state = await asyncio.to_thread(load_state, self._engine, self._key, cfg.name)
            if state is not None:
                self._runs_since = int(state.get("runs_since", 0))
                self._last_retrain = float(state.get("last_retrain", self._last_retrain))
                self._labels_since = float(state.get("labels_since", 0.0))
                self._saved_monitor = state.get("monitor")

    def _target_output(self) -> str:
        """The output field of the step the job would retrain, when it can be told."""
        if self._workflow is None:
            return "output"
        from relayflow.learn.retrain import resolve_target

        try:
            return resolve_target(self._workflow, self.config.target).step.output_field
        except RelayflowError:
            return "output"

    @property
    def _key(self) -> str:
        return self._workflow.name if self._workflow is not None else "workflow"

    async def run(self, handoff: Handoff, step: StepInfo) -> Result:
        reason: str | None = None
        runs: list[str] | None = None
        if self.config.trigger == "performance_drop":
            reason, runs = await self._observe(handoff, step)
        elif self.config.trigger == "new_labels":
            reason = await self._new_labels()
        elif self._schedule is not None:
            reason = self._tick()
            self._unsaved += 1
            if reason is not None or self._unsaved >= CHECKPOINT_EVERY:
                await self._checkpoint()
        if reason is None:
            return Result(handoff.data, confidence=handoff.confidence)
        note = self._start(runs, step.run_id)
        data = {**handoff.data, "retrain_requested": True, "retrain_reason": reason + note}
        return Result(data, confidence=handoff.confidence)

    def _busy(self) -> bool:
        return self._job is not None and not self._job.done()

    async def _observe(self, handoff: Handoff, step: StepInfo) -> tuple[str | None, list[str]]:
        fields = self._fields
        assert fields is not None, "run() before prepare()"  # noqa: S101 - invariant: prepare() ran
        prediction = handoff.data.get(fields.output)
        reference = handoff.data.get(fields.reference)
        reviewed = next((e.step for e in reversed(handoff.lineage) if "reviewer" in e.versions), "")
        if reviewed and self._engine is not None:
            from relayflow.learn.data import review_answers

            # the model's own answer is judged, not the one a reviewer put in its place
            answers = await asyncio.to_thread(
                review_answers, self._engine, step.run_id, reviewed, fields.output
            )
            if answers is not None and answers[1] is not None:
                # as in the training data, a person's label wins over the carried one
                prediction, reference = answers
        if reference is None and self._metric != "pass_at_k":
            return None, []
        monitor = await self._ready_monitor()
        status = monitor.observe(prediction, reference, step.run_id)
        self._unsaved += 1
        if status.retrain and not self._busy():
            runs = monitor.keys()
            monitor.reset()
            await self._checkpoint()
            return status.reason, runs
        if self._unsaved >= CHECKPOINT_EVERY:
            await self._checkpoint()
        return None, []

    async def _new_labels(self) -> str | None:
        """``new_labels: N`` when N labels came in since the last job started (not while one
        runs: the labels that arrive meanwhile count towards the next)."""
        if self._engine is None or self._busy():
            return None
        from relayflow.store.outcomes import label_count

        since = self._labels_since
        started = time.time()
        count = await asyncio.to_thread(label_count, self._engine, self._key, since)
        if count < self.config.every:
            return None
        self._labels_since = started
        await self._checkpoint()
        return f"new_labels: {count} since the last fit"

    def _tick(self) -> str | None:
        assert self._schedule is not None  # noqa: S101 - invariant: prepare() made the schedule
        unit, amount = self._schedule
        self._runs_since += 1
        elapsed = time.time() - self._last_retrain
        due = self._runs_since >= amount if unit == "runs" else elapsed >= amount
        if not due or self._busy():
            return None
        self._runs_since = 0
        self._last_retrain = time.time()
        return f"schedule: {self.config.schedule}"

    def _start(self, runs: list[str] | None, latest: str) -> str:
        """Start the job in the background; the note says why it could not start."""
        if self._store is None or self._workflow is None:
            why = "no run store" if self._store is None else "no workflow file"
            message = f"retrain not started: {why} (run the workflow with a store)"
            self.errors.append(message)
            log.warning("%s: %s", self.name, message)
            return f" ({message})"
        from relayflow.learn.retrain import RetrainRequest

        request = RetrainRequest(
            self._workflow,
            self._store,
            target=self.config.target,
            trigger=self.config.trigger,
            metric=self.config.metric,
            runs=tuple(runs) if runs else None,
            wait_for=tuple(runs) if runs else (latest,),
            history=self.ctx.resolve(self.config.history) if self.config.history else None,
        )
        self._job = asyncio.get_running_loop().create_task(self._run_job(request))
        return ""

    async def _run_job(self, request: RetrainRequest) -> None:
        from relayflow.learn.retrain import run_retrain

        try:
            outcome = await run_retrain(request, self.ctx.get_provider)
        except RelayflowError as exc:
            self.errors.append(str(exc))
            log.warning("%s: retrain failed: %s", self.name, exc)
            return
        except Exception as exc:  # a background task must not die unseen
            self.errors.append(f"{type(exc).__name__}: {exc}")
            log.exception("%s: retrain failed", self.name)
            return
        self.outcomes.append(outcome)
        log.info(
            "%s: %s %s %s (%s)",
            self.name,
            outcome.name,
            outcome.candidate,
            outcome.decision,
            outcome.note,
        )

    async def wait(self) -> None:
        """Until the background job (if any) has finished."""
        if self._job is not None:
            await asyncio.shield(self._job)

    def _state(self) -> dict[str, Any]:
        monitor = self._monitor
        return {
            "monitor": monitor.state() if monitor is not None else self._saved_monitor,
            "runs_since": self._runs_since,
            "last_retrain": self._last_retrain,
            "labels_since": self._labels_since,
        }

    async def _ready_monitor(self) -> DriftMonitor:
        """The monitor, built on the first labelled item (importing river takes a second or
        more, which a workflow whose items carry no labels never pays) from the checkpoint."""
        async with self._lock:
            if self._monitor is None:
                from relayflow.learn.drift import DriftMonitor

                monitor = await asyncio.to_thread(DriftMonitor, self._metric, self.config.threshold)
                if isinstance(self._saved_monitor, dict):
                    monitor.restore(self._saved_monitor)
                self._monitor = monitor
            return self._monitor

    async def _checkpoint(self) -> None:
        if self._engine is None:
            return
        from relayflow.store.checkpoints import save_state

        self._unsaved = 0
        await asyncio.to_thread(save_state, self._engine, self._key, self.name, self._state())

    async def close(self) -> None:
        try:
            await self.wait()
            await self._checkpoint()
        finally:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
