"""Parse YAML while remembering the line of every key and list item, so errors can point at them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


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
    """Parse ``text`` (safe YAML) and return the data with its line map. Raises yaml.YAMLError."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    lines = LineMap()
    if node is not None:
        lines.lines[()] = node.start_mark.line + 1
        _walk(node, (), lines)
    return data, lines


def _walk(node: yaml.Node, path: Path_, out: LineMap) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            line = key_node.start_mark.line + 1
            if key in seen:
                out.duplicates.append((child, line))
            seen.add(key)
            out.lines[child] = line
            _walk(value_node, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            out.lines[child] = item.start_mark.line + 1
            _walk(item, child, out)
