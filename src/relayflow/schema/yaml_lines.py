"""Parse YAML while remembering the line of every key and list item, so errors can point at them.

The one YAML reader of relayflow: it bounds a document's size, its aliases and what they expand
to, so that a small file cannot make every later step (pydantic, JSON, copies) walk billions of
values (a "billion laughs" bomb).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

#: the most characters a YAML document may have (the server takes workflows of 1 MB too)
MAX_CHARS = 1_000_000
#: the most alias uses (``*name``, ``<<: *name`` included) in one document
MAX_ALIASES = 1_000
#: the most values a document may hold once every alias is expanded in place
MAX_NODES = 100_000


class YAMLLimitError(yaml.MarkedYAMLError):
    """A document over one of the bounds above; ``fix`` says what to change."""

    def __init__(self, problem: str, mark: Any, fix: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.fix = fix


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting alias uses and the size of each value with its aliases
    expanded (known once the value is composed, so the count costs one pass)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.aliases = 0
        self.last_alias: Any = None  # a yaml Mark (two classes: pure and C)
        #: expanded size of every node composed so far, by id (the root holds them all alive)
        self.sizes: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event: yaml.AliasEvent = self.peek_event()  # type: ignore[no-untyped-call]
            mark = event.start_mark
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise YAMLLimitError(
                    f"more than {MAX_ALIASES} aliases (*name) in one file",
                    mark,
                    "write the values out, or split the file",
                )
            alias = super().compose_node(parent, index)
            if alias is None or id(alias) not in self.sizes:
                raise YAMLLimitError(
                    f"alias *{event.anchor} refers to a value that contains it (a structure "
                    "without end)",
                    mark,
                    "point the alias at a value defined before and outside it",
                )
            self.last_alias = mark
            return alias
        node = super().compose_node(parent, index)
        if node is None:  # not produced by PyYAML's composer; nothing to count
            return node
        size = 1
        if isinstance(node, yaml.MappingNode):
            size += sum(self.sizes[id(k)] + self.sizes[id(v)] for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            size += sum(self.sizes[id(item)] for item in node.value)
        if size > MAX_NODES:
            raise YAMLLimitError(
                f"the aliases expand the file to more than {MAX_NODES:,} values",
                self.last_alias or node.start_mark,
                "use fewer nested aliases (a YAML bomb is refused)",
            )
        self.sizes[id(node)] = size
        return node


def compose_yaml(text: str) -> yaml.Node | None:
    """The node tree of ``text`` (one document), within the bounds. Raises yaml.YAMLError."""
    loader = _loader(text)
    try:
        return _compose(loader)
    finally:
        loader.dispose()


def _loader(text: str) -> _BoundedLoader:
    if len(text) > MAX_CHARS:
        raise YAMLLimitError(
            f"the file has {len(text):,} characters, more than the {MAX_CHARS:,} allowed",
            None,
            "split it, or move large data into files it names",
        )
    return _BoundedLoader(text)


def _compose(loader: _BoundedLoader) -> yaml.Node | None:
    try:
        node: yaml.Node | None = loader.get_single_node()
    except RecursionError:
        raise yaml.YAMLError("the document is nested too deeply") from None
    return node


@dataclass(slots=True)
class LineMap:
    """Line numbers (1-based) of every mapping key and sequence item, by their path."""

    lines: dict[Path_, int] = field(default_factory=dict)
    duplicates: list[tuple[Path_, int]] = field(default_factory=list)

    def line_of(self, path: Path_) -> int:
        """The line of ``path``, or of its nearest ancestor that has one (0 if none)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line:
                return line
        return 0


def parse_yaml(text: str) -> tuple[Any, LineMap]:
    """Parse ``text`` (safe YAML) and return the data with its line map. Raises yaml.YAMLError.

    Every failure of the YAML library is raised as a ``yaml.YAMLError``: a value that a tag
    cannot convert (``2020-13-45``, ``!!int abc``) and nesting too deep to parse included; a
    document over the bounds (size, aliases, expanded values) is a ``YAMLLimitError``.
    """
    loader = _loader(text)
    try:
        node = _compose(loader)
        lines = LineMap()
        if node is None:
            return None, lines
        # Walk before constructing: construction flattens `<<` merge keys into the node,
        # which would make a merged key and its local override look like a duplicate.
        lines.lines[()] = node.start_mark.line + 1
        _walk(node, lines)
        try:
            data = loader.construct_document(node)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # PyYAML's converters raise whatever they hit (IndexError …)
            raise _bad_scalar(node, exc) from None
    finally:
        loader.dispose()
    return data, lines


def _walk(root: yaml.Node, out: LineMap) -> None:
    """Record the line of every key and item. Iterative, and each node is visited once, so
    aliases (even an alias of its own parent, which YAML allows) cannot loop or explode."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, Path_]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        children: list[tuple[yaml.Node, Path_]] = []
        if isinstance(node, yaml.MappingNode):
            keys: set[tuple[str, str]] = set()
            for key_node, value_node in node.value:
                # A complex key (`? [a, b]`) is rejected when constructing; never repr its nodes.
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                child = (*path, key)
                line = key_node.start_mark.line + 1
                # `1` and `"1"` are different keys; compare the tag too.
                identity = (str(key_node.tag), key)
                if identity in keys:
                    out.duplicates.append((child, line))
                keys.add(identity)
                out.lines[child] = line  # a repeated key: PyYAML keeps the last one
                children.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = (*path, index)
                out.lines[child] = item.start_mark.line + 1
                children.append((item, child))
        stack.extend(reversed(children))  # document order, so an alias maps to its anchor's path


def _bad_scalar(root: yaml.Node, exc: Exception) -> yaml.YAMLError:
    """Find the scalar whose tag could not convert it, to report its line."""
    converter = yaml.SafeLoader("")
    seen: set[int] = set()
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            try:
                converter.construct_object(node, deep=True)
            except Exception as inner:  # any failure marks the culprit
                return yaml.MarkedYAMLError(
                    problem=f"cannot read {node.value!r} as {str(node.tag).rsplit(':', 1)[-1]}"
                    f" ({inner})",
                    problem_mark=node.start_mark,
                )
        elif isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in reversed(node.value) for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
    return yaml.YAMLError(f"cannot read a value ({exc})")
