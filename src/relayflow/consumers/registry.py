"""Which class implements each consumer type of a workflow's ``consumers:`` section: built-ins by
lazy ``module:Class`` entries, third-party types through the ``relayflow.consumers`` entry-point
group. Nothing is imported until first use; an entry point only adds a type that a workflow
may name, it attaches nothing by itself (a package installed for one workflow must not start
reading every other's events)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from relayflow.consumers.base import ConfiguredConsumer, ConsumerContext

_BUILTIN: dict[str, str] = {
    "jsonl": "relayflow.consumers.jsonl:JsonlConsumer",
}

_registered: dict[str, type[ConfiguredConsumer] | str] = {}


class ConsumerTypeError(LookupError):
    """A consumer type that is not known or cannot be imported; ``fix`` says what to do."""

    def __init__(self, message: str, fix: str, *, unknown: bool = False) -> None:
        super().__init__(message)
        self.message, self.fix = message, fix
        #: no type of that name at all (a misspelling, or a package not installed)
        self.unknown = unknown


def _plugins() -> Any:
    """Third-party consumer types (importlib.metadata is slow to import; only on first use)."""
    from importlib.metadata import entry_points

    return entry_points(group="relayflow.consumers")


def register(type_name: str, consumer: type[ConfiguredConsumer] | str) -> None:
    """Make ``type_name`` available: a class, or a lazy ``"module:Class"`` string."""
    _registered[type_name] = consumer


def known_types() -> list[str]:
    names = set(_BUILTIN) | set(_registered)
    names.update(ep.name for ep in _plugins())
    return sorted(names)


def consumer_class(type_name: str) -> type[ConfiguredConsumer]:
    """The class for ``type_name``, importing it on first use; ConsumerTypeError if none."""
    target = _registered.get(type_name) or _BUILTIN.get(type_name)
    if target is None:
        for ep in _plugins():
            if ep.name == type_name:
                target = ep.value
                break
    if target is None:
        raise ConsumerTypeError(
            f"unknown consumer type {type_name!r}",
            f"use one of: {', '.join(known_types())} (or install the package that adds it)",
            unknown=True,
        )
    if isinstance(target, str):
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConsumerTypeError(
                f"consumer type {type_name!r} needs a package that is not installed ({exc.name})",
                f"install it (pip install {exc.name}), or remove the entry",
            ) from exc
        cls = getattr(module, attr, None)
        if not (isinstance(cls, type) and issubclass(cls, ConfiguredConsumer)):
            raise ConsumerTypeError(
                f"{target} (consumer type {type_name!r}) is not a ConfiguredConsumer subclass",
                "fix the package's `relayflow.consumers` entry point",
            )
        _registered[type_name] = cls
        return cls
    return target


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
