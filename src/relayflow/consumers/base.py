"""What a configurable consumer is: a class with a settings model, built once per runner from
one entry of the workflow's ``consumers:`` section, closed when the runner closes."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from pydantic import BaseModel, ConfigDict

from relayflow.errors import Problem, SpecError

if TYPE_CHECKING:
    from relayflow.core.events import Event


class NoSettings(BaseModel):
    """The settings of a consumer type that takes none: any key is a mistake."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class ConsumerContext:
    """What a configured consumer knows of the workflow it is attached to."""

    #: the workflow's name
    workflow: str
    #: the YAML's folder: relative paths in settings resolve against it
    base_dir: Path
    #: the workflow file and the line of this consumer's entry, for errors
    file: Path
    line: int = 0
    #: the entry's place in the section, ``consumers[0]``
    field: str = "consumers"

    def error(self, setting: str, message: str, fix: str) -> SpecError:
        """An error at this entry's line, naming ``setting`` and the fix."""
        field = f"{self.field}.{setting}" if setting else self.field
        return SpecError([Problem(str(self.file), self.line, field, message, fix)])


class Finding(NamedTuple):
    """A problem with one setting that its model cannot see (a folder that does not exist)."""

    field: str
    message: str
    fix: str


class ConfiguredConsumer:
    """Base of a consumer type that a workflow attaches under ``consumers:``.

    A subclass names its ``settings`` model (pydantic, ``extra="forbid"``: a misspelt key is
    reported by ``relayflow validate`` at its line), may add ``check`` for what the model cannot
    see and ``files`` for the local files it writes, and implements ``handle`` (see
    relayflow.core.events.Consumer). The runner that it was built for closes it. Register it
    in relayflow/consumers/registry.py or through the ``relayflow.consumers`` entry-point group
    (``name = "package.module:Class"``).
    """

    settings: ClassVar[type[BaseModel]] = NoSettings

    def __init__(self, settings: Any, context: ConsumerContext) -> None:
        self.context = context

    @classmethod
    def check(cls, settings: Any, context: ConsumerContext) -> list[Finding]:
        """Problems of valid-looking ``settings`` that would stop the consumer; none by default."""
        return []

    @classmethod
    def files(cls, settings: Any, context: ConsumerContext) -> list[tuple[str, Path]]:
        """The local files the consumer reads or writes, by setting: the server confines a
        registered workflow's files to its folders (server/confine.py). None by default."""
        return []

    def handle(self, event: Event) -> Awaitable[None] | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the consumer holds (a file, a connection); nothing by default."""
