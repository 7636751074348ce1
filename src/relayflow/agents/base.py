"""The contract every agent type fulfils: build once per workflow, then ``run`` once per step."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from relayflow.core.result import Result, StepInfo

if TYPE_CHECKING:
    from relayflow.agents.formats import BadRecord
    from relayflow.core.handoff import Handoff
    from relayflow.providers.base import Provider
    from relayflow.schema.file import AgentConfig
    from relayflow.schema.workflow import Workflow

#: an agent's synchronous step (see ``Agent.run_inline``): the output data alone (a plain dict,
#: for an ok result with nothing else to say), a Result, or an awaitable of either
InlineRun = Callable[["Handoff"], "dict[str, Any] | Result | Awaitable[dict[str, Any] | Result]"]


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What an agent may use while it is built: its workflow's folder and the model providers."""

    base_dir: Path
    workflow_file: Path | None
    get_provider: Callable[[str], Provider]
    #: names of the ``human_review`` steps downstream of each step (a check flags instead of
    #: parking the run itself when a reviewer step follows it)
    reviewers_downstream: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: the URL of the runner's store, for agents that keep state there (drift, registry)
    store_url: str | None = None
    #: the whole loaded workflow, for agents that read its top-level sections (budget, …)
    workflow: Workflow | None = None
    #: sends an event on the runner's stream (budget alerts); None outside a runner
    emit: Callable[[Any], object] | None = None

    def resolve(self, path: str) -> Path:
        """A path from the YAML, relative to the YAML's own folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)


class Agent(abc.ABC):
    """One node type of a workflow. Subclasses set ``type_name`` and ``Config``.

    Nothing heavy happens in ``__init__``; ``prepare`` loads scripts, models and files once per
    workflow; ``run`` executes one step and must not keep per-run state on ``self``.
    ``blocking = True`` makes the local executor call ``run`` from a worker thread.
    """

    type_name: ClassVar[str]
    Config: ClassVar[type[AgentConfig]]

    def __init__(self, config: AgentConfig, ctx: BuildContext) -> None:
        self.config = config
        self.ctx = ctx

    @property
    def name(self) -> str:
        return self.config.name

    async def prepare(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Load what the agent needs once (scripts, templates, models)."""

    def versions(self) -> Mapping[str, str]:
        """The static versions that shape this agent's output (script hash, template hash…)."""
        return {}

    @abc.abstractmethod
    async def run(self, handoff: Handoff, step: StepInfo) -> Result:
        """Execute one step on ``handoff`` and return what it produced."""

    def run_inline(self) -> InlineRun | None:
        """A plain function that does what ``run`` does, for an agent whose step is synchronous
        and takes microseconds (an ``inline`` transform): the runner then calls it directly on
        the event loop, without a coroutine per step (and without a StepInfo: an agent that
        needs one uses ``run``). Asked once, after ``prepare``. It may hand back an awaitable
        when the step turns out not to be synchronous. None (the default): every step goes
        through ``run``."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release what ``prepare`` acquired."""


class SourceAgent(Agent):
    """An agent that can start a batch: each record it yields becomes one run, and each
    BadRecord (agents/formats.py) one bad record of the batch, listed and skipped."""

    @abc.abstractmethod
    def records(self) -> AsyncIterator[dict[str, Any] | BadRecord]:
        """Stream the source's records, never loading the whole source into memory; a record
        that cannot be read is a BadRecord in its place, so the batch goes on."""
