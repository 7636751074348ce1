"""Shape a customer question for the seed workflow: tidy whitespace, keep the question, and put
the help-centre notes that come with it under ``text`` (trimmed so the small model copes)."""

from __future__ import annotations

import re
from typing import Any

MAX_TEXT = 500
_SPACES = re.compile(r"\s+")


def _squash(value: Any) -> str:
    return _SPACES.sub(" ", str(value or "")).strip()


def transform(record: dict[str, Any]) -> dict[str, Any]:
    """``{id, customer_id, question, context}`` in; ``{id, customer_id, question, text}`` out."""
    text = _squash(record.get("context") or record.get("text"))
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT].rsplit(" ", 1)[0] + " …"
    return {
        "id": str(record.get("id", "")),
        "customer_id": str(record.get("customer_id") or ""),
        "question": _squash(record.get("question")),
        "text": text,
    }
