"""Turn a raw support ticket into what the model sees: one short ``text`` without signatures or
quoted replies, plus the gold label under ``expected`` for scoring (never shown to the model)."""

from __future__ import annotations

import re
from typing import Any

MAX_BODY = 600

# Where a quoted earlier message starts: everything from here on is history, not the request.
_QUOTE_START = re.compile(
    r"^(On .{4,120} wrote:\s*$|-{2,}\s*Original Message\s*-{2,}|From: .+@|>)",
    re.MULTILINE | re.IGNORECASE,
)
_SIGN_OFF = re.compile(
    r"^(thanks|thank you|many thanks|best|best regards|kind regards|regards|cheers|"
    r"sincerely|warm regards|br)\s*[,.!]*\s*$",
    re.IGNORECASE,
)
_MOBILE = re.compile(r"^sent from my \w+( \w+)?\s*$", re.IGNORECASE)
_REPLY_PREFIX = re.compile(r"^\s*((re|fwd?|aw)\s*:\s*)+", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def _strip_quotes(body: str) -> str:
    match = _QUOTE_START.search(body)
    return body[: match.start()] if match else body


def _strip_signature(body: str) -> str:
    lines = body.rstrip().split("\n")
    for i, line in enumerate(lines):
        if line.strip() in ("--", "-- ") or _MOBILE.match(line.strip()):
            return "\n".join(lines[:i])
    # a sign-off line ("Thanks," / "Kind regards,") followed by at most three lines of name,
    # phone or customer number near the end
    for i in range(max(0, len(lines) - 4), len(lines)):
        if _SIGN_OFF.match(lines[i].strip()) and i > 0:
            return "\n".join(lines[:i])
    return body


def _squash(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + " …"


def transform(record: dict[str, Any]) -> dict[str, Any]:
    """One ticket in, the model's view out: ``id``, ``channel``, ``customer``, ``text`` and
    ``expected`` (the ``intent`` label when the ticket has one, else ``None``)."""
    body = str(record.get("body") or "").replace("\r\n", "\n").replace("\r", "\n")
    body = _squash(_strip_signature(_strip_quotes(body)))
    subject = _squash(_REPLY_PREFIX.sub("", str(record.get("subject") or "")))
    body = _truncate(body, MAX_BODY)
    text = f"{subject}\n{body}" if subject else body
    return {
        "id": str(record.get("id", "")),
        "channel": str(record.get("channel") or "web"),
        "customer": str(record.get("customer") or ""),
        "text": text,
        "expected": record.get("intent"),
    }
