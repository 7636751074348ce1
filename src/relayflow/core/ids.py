"""Identifiers of runs and batches."""

from __future__ import annotations

import itertools
import os
import random
import time

_ID_PREFIX = os.urandom(2).hex()
_ID_COUNTER = itertools.count(random.randrange(1 << 16))  # noqa: S311 - where an id counter starts: no secret


def new_id() -> str:
    """Time-ordered and unique: milliseconds, a per-process prefix and a counter (20 hex)."""
    return f"{time.time_ns() // 1_000_000:011x}{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFF:05x}"
