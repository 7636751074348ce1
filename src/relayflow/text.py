"""Text that UTF-8 can carry: finding lone surrogates (``"\\ud800"``, valid in JSON and in a
Python ``str``, but not encodable) in JSON-like values, and replacing them with U+FFFD."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
#: a value nested deeper than this is not walked (json.loads itself stops near 1,000 levels)
_DEEPEST = 2000


def has_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def clean_text(text: str) -> str:
    """``text`` with each surrogate pair joined and each lone surrogate replaced by U+FFFD."""
    if not has_surrogate(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def surrogate_path(value: Any, path: str = "") -> str | None:
    """The dotted path (``input.x``, ``inputs[2].k``) of the first key or string in ``value``
    that holds a lone surrogate, or None when there is none."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            if has_surrogate(item):
                return where or "value"
        elif depth < _DEEPEST and isinstance(item, Mapping):
            for key, inner in reversed(list(item.items())):
                here = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and has_surrogate(key):
                    return clean_text(here)
                stack.append((inner, here, depth + 1))
        elif depth < _DEEPEST and isinstance(item, list | tuple):
            for index in reversed(range(len(item))):
                stack.append((item[index], f"{where}[{index}]", depth + 1))
    return None


def clean(value: Any, depth: int = 0) -> Any:
    """``value`` with every key and string cleaned (``clean_text``); the same object when it
    holds nothing to clean."""
    if isinstance(value, str):
        return clean_text(value)
    if depth >= _DEEPEST:
        return value
    if isinstance(value, dict):
        out = {
            clean_text(k) if isinstance(k, str) else k: clean(v, depth + 1)
            for k, v in value.items()
        }
        return value if _same(out, value) else out
    if isinstance(value, list):
        items = [clean(v, depth + 1) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _same(new: dict[Any, Any], old: dict[Any, Any]) -> bool:
    return len(new) == len(old) and all(k in old and v is old[k] for k, v in new.items())


def surrogate_message(where: str) -> str:
    """The one line that refuses such text, naming the field."""
    return (
        f"{where}: text with a lone surrogate (an unpaired \\ud800-\\udfff escape) cannot be "
        "stored or shown — send valid Unicode (pair the surrogate or drop it)"
    )
