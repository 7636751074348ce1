"""The contract every agent type fulfils: build once per workflow, then ``run`` once per step."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from relayflow.core.result import Result, StepInfo

if TYPE_CHECKING:
    from relayflow.agents.checks import AgentCheck
    from relayflow.agents.formats import BadRecord
    from relayflow.core.handoff import Handoff
    from relayflow.errors import Problem
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


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file that an agent's config names: checked to exist by ``relayflow validate``, and
    confined, hashed and bundled by the server (server/confine.py)."""

    #: the config field that names it (a problem with the file points at this field)
    field: str
    #: the path as the config has it (relative paths start at the workflow's folder)
    path: str
    #: ``file`` must be a regular file; ``any`` may also be a folder (a folder of records)
    kind: Literal["file", "any"] = "file"
    #: whether relayflow runs or imports it as code (a transform's script)
    code: bool = False
    #: whether ``relayflow validate`` checks that it exists (a folder that a glob reads may
    #: be filled later); the server confines and hashes it either way
    checked: bool = True


class Agent(abc.ABC):
    """One node type of a workflow. Subclasses set ``type_name`` and ``Config``.

    Nothing heavy happens in ``__init__``; ``prepare`` loads scripts, models and files once per
    workflow; ``run`` executes one step and must not keep per-run state on ``self``.
    ``blocking = True`` makes the local executor call ``run`` from a worker thread.

    Besides running, a type declares what the rest of relayflow needs to know about it without
    building it (the class attributes and classmethods below): its config model, how its steps
    may be cached, the files its config names, whether it runs its registrant's code, and its
    own checks of a workflow file. A built-in type and a plugin (entry point group
    ``relayflow.agents``) declare them the same way.
    """

    type_name: ClassVar[str]
    #: the pydantic model of the type's settings in the YAML (a subclass of AgentConfig)
    Config: ClassVar[type[AgentConfig]]
    #: a workflow-wide ``cache:`` may reuse this type's results (retrieval, checks, reviews and
    #: retraining read live state or are cheap, so they run every time unless they opt in)
    cacheable: ClassVar[bool] = False
    #: steps of this type are cached even without any ``cache:`` (when deterministic)
    cached_by_default: ClassVar[bool] = False
    #: running a step executes code its registrant supplies or chooses (a script, an HTTP call
    #: from the server, generated code): registering it on a server needs ``register_code``
    runs_code: ClassVar[bool] = True

    def __init__(self, config: AgentConfig, ctx: BuildContext) -> None:
        self.config = config
        self.ctx = ctx

    @property
    def name(self) -> str:
        return self.config.name

    @classmethod
    def deterministic(cls, config: AgentConfig) -> bool:
        """Whether a step with ``config`` gives the same output for the same input and versions
        (a step that is not is never answered from the cache)."""
        return True

    @classmethod
    def files(cls, config: AgentConfig) -> Sequence[FileRef]:
        """The local files ``config`` names (a template, a script, a ruleset …)."""
        return ()

    @classmethod
    def secrets(cls, config: AgentConfig, environ: Mapping[str, str]) -> set[str]:
        """The secret values ``config`` holds or names (read from ``environ``), to be scrubbed
        from what is stored, shown and logged (spec/secrets.py)."""
        return set()

    @classmethod
    def validate(cls, config: AgentConfig, check: AgentCheck) -> list[Problem]:
        """What is wrong with ``config`` beyond its fields' types, each problem at its line of
        the workflow file (or of the file it names). The files from ``files`` are checked to
        exist before; this checks what is inside them and how settings fit together."""
        return []

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
