"""``extends:``: a workflow file that adds sections to another one (the base) without editing it.

The overlay may set any top-level section except ``workflow:`` (the agents stay the base's). A
mapping section (``models``, ``escalation``, ``evaluate``, ``defaults`` …) is merged entry by
entry, an entry of the overlay replacing the base's entry of the same name whole; any other
value replaces the base's. Relative paths start at the base's folder, wherever the overlay is
(as with Compose's override files), and every problem points at the file that wrote the value.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relayflow.errors import Problem
from relayflow.schema.yaml_lines import LineMap, Path_

KEY = "extends"


@dataclass(frozen=True, slots=True)
class Layered:
    """The overlay merged onto its base: the data, lines from both files, and which paths the
    overlay wrote (``owned``), so that problems can name the right file."""

    data: dict[str, Any]
    lines: LineMap
    base: Path
    base_text: str
    owned: frozenset[Path_]


def base_path(overlay: Path, value: str) -> Path:
    """The base file named by ``extends:``, relative to the overlay's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else overlay.parent / path


def merge(
    base: dict[str, Any], base_lines: LineMap, overlay: dict[str, Any], overlay_lines: LineMap
) -> tuple[dict[str, Any], LineMap, frozenset[Path_]]:
    """``overlay`` (without its ``extends``) merged onto ``base``, with the merged line map."""
    data = {k: v for k, v in base.items() if k != KEY}
    owned: set[Path_] = set()
    for key, value in overlay.items():
        if key == KEY:
            continue
        below = data.get(key)
        if isinstance(below, dict) and isinstance(value, dict):
            data[key] = {**below, **value}
            owned.update((key, name) for name in value)
        else:
            data[key] = value
            owned.add((key,))
    lines = LineMap({p: n for p, n in base_lines.lines.items() if not _under(p, owned)})
    for path, line in overlay_lines.lines.items():
        if path and path[0] != KEY:
            # a section both files write keeps the base's line for its own key
            lines.lines[path] = lines.lines.get(path, line) if len(path) == 1 else line
    return data, lines, frozenset(owned)


def _under(path: Path_, owned: frozenset[Path_] | set[Path_]) -> bool:
    return any(path[: len(p)] == p for p in owned)


def attribute(
    problems: list[Problem], overlay: str, base: str, owned: frozenset[Path_]
) -> list[Problem]:
    """Each problem of the merged document in the file that wrote its field: the overlay's
    own sections, or the base for everything else (its agents above all)."""
    out = []
    for problem in problems:
        if problem.file in (overlay, base):
            # `allow[0]`, `variants[1].name`: the section is the part before the index
            parts = tuple(re.findall(r"[^.\[\]]+", problem.field))
            mine = not parts or parts[0] == KEY or _under(parts, owned)
            problem = dataclasses.replace(problem, file=overlay if mine else base)
        out.append(problem)
    return out
