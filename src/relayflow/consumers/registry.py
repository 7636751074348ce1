"""Which class implements each consumer type of a workflow's ``consumers:`` section: built-ins by
lazy ``module:Class`` entries, third-party types through the ``relayflow.consumers`` entry-point
group. Nothing is imported until first use; an entry point only adds a type that a workflow
may name, it attaches nothing by itself (a package installed for one workflow must not start
reading every other's events)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from relayflow.consumers.base import ConfiguredConsumer, ConsumerContext
from relayflow.core.plugins import NotAPlugin, Plugins

_BUILTIN: dict[str, str] = {
    "jsonl": "relayflow.consumers.jsonl:JsonlConsumer",
}


class ConsumerTypeError(LookupError):
    """A consumer type that is not known or cannot be imported; ``fix`` says what to do."""

    def __init__(self, message: str, fix: str, *, unknown: bool = False) -> None:
        super().__init__(message)
        self.message, self.fix = message, fix
        #: no type of that name at all (a misspelling, or a package not installed)
        self.unknown = unknown


CONSUMER_TYPES: Plugins[ConfiguredConsumer] = Plugins(
    "relayflow.consumers", ConfiguredConsumer, _BUILTIN
)


def register(type_name: str, consumer: type[ConfiguredConsumer] | str) -> None:
    """Make ``type_name`` available: a class, or a lazy ``"module:Class"`` string."""
    CONSUMER_TYPES.register(type_name, consumer)


def known_types() -> list[str]:
    return CONSUMER_TYPES.names()


def consumer_class(type_name: str) -> type[ConfiguredConsumer]:
    """The class for ``type_name``, importing it on first use; ConsumerTypeError if none."""
    try:
        cls = CONSUMER_TYPES.resolve(type_name)
    except ImportError as exc:
        raise ConsumerTypeError(
            f"consumer type {type_name!r} needs a package that is not installed ({exc.name})",
            f"install it (pip install {exc.name}), or remove the entry",
        ) from exc
    except NotAPlugin as exc:
        raise ConsumerTypeError(
            f"{exc.target} (consumer type {type_name!r}) is not a ConfiguredConsumer subclass",
            "fix the package's `relayflow.consumers` entry point",
        ) from None
    if cls is None:
        raise ConsumerTypeError(
            f"unknown consumer type {type_name!r}",
            f"use one of: {', '.join(known_types())} (or install the package that adds it)",
            unknown=True,
        )
    return cls


def build_consumer(
    type_name: str, settings: Mapping[str, Any], context: ConsumerContext
) -> ConfiguredConsumer:
    """Build one entry of ``consumers:``; a SpecError at the entry's line if it cannot be (the
    loader has validated it already: this is for a file changed or a type removed since)."""
    try:
        cls = consumer_class(type_name)
    except ConsumerTypeError as exc:
        raise context.error("type", exc.message, exc.fix) from None
    try:
        parsed = cls.settings.model_validate(dict(settings))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise context.error(where, first["msg"].lower(), "see `relayflow validate`") from None
    return cls(parsed, context)
