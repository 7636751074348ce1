"""The one way relayflow finds the class behind a name that a workflow writes (an agent type, a
provider, a consumer type): built-ins as lazy ``"module:Class"`` strings, classes registered at
run time, and third-party packages through an entry-point group. Nothing is imported until a
name is asked for, and a class is imported once.

Each registry (agents/registry.py, providers/registry.py, consumers/registry.py) holds one
``Plugins`` and turns what can go wrong into its own words: an unknown name (``resolve`` returns
None), a package that is not installed (ImportError) or an entry that names something else
(``NotAPlugin``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")


class NotAPlugin(TypeError):
    """An entry names an object that is not a subclass of the registry's base class."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


class Plugins(Generic[T]):
    """The classes of one kind (subclasses of ``base``) by the name a workflow gives them."""

    # ``base`` is a plain type: the base of agent types is abstract, which type[T] refuses
    def __init__(self, group: str, base: type, builtin: Mapping[str, str]) -> None:
        self.group = group
        self.base = base
        self.builtin = dict(builtin)
        #: names registered at run time, and entries already imported (class or "module:Class")
        self.registered: dict[str, type[T] | str] = {}

    def entry_points(self) -> Iterable[Any]:
        """Third-party entries (importlib.metadata is slow to import: only on first use)."""
        from importlib.metadata import entry_points

        return entry_points(group=self.group)

    def register(self, name: str, target: type[T] | str) -> None:
        """Make ``name`` available: a class, or a lazy ``"module:Class"`` string."""
        self.registered[name] = target

    def names(self) -> list[str]:
        names = set(self.builtin) | set(self.registered)
        names.update(point.name for point in self.entry_points())
        return sorted(names)

    def resolve(self, name: str) -> type[T] | None:
        """The class for ``name``, imported on first use; None when nothing has that name.
        Raises ImportError when its package is missing, NotAPlugin when it is no ``base``."""
        target = self.registered.get(name) or self.builtin.get(name)
        if target is None:
            target = next((p.value for p in self.entry_points() if p.name == name), None)
        if target is None or not isinstance(target, str):
            return target
        module_name, _, attr = target.partition(":")
        found = getattr(importlib.import_module(module_name), attr, None)
        if not (isinstance(found, type) and issubclass(found, self.base)):
            raise NotAPlugin(target)
        cls = cast("type[T]", found)
        self.registered[name] = cls
        return cls
