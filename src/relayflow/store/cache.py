"""The step cache's storage: results kept in the run store's database, with an in-process
mirror so that a lookup never forces a write of the store's log.

It is given the store's two primitives (a read of what is committed, a write nobody waits on)
rather than the store itself, so that it knows nothing of the store that holds it."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from relayflow.core.result import Usage
from relayflow.store import schema
from relayflow.store.rows import Write
from relayflow.store.statements import Statement, dumps, loads

#: runs a query on what the database holds now, without writing what is pending
ReadCommitted = Callable[[Any], list[Any]]
#: queues writes that nobody waits on (committed within moments)
WriteSoon = Callable[[list[Write]], None]


@dataclass(frozen=True, slots=True)
class CachedStep:
    output: Mapping[str, Any]
    confidence: float | None
    versions: Mapping[str, str]
    flags: tuple[str, ...]
    usage: Usage
    expires: float | None


class StepCache:
    """Get and put cached step results. Entries written by this process are served from memory
    (bounded); others are read from the database."""

    def __init__(
        self, read: ReadCommitted, write: WriteSoon, upsert: Statement, memory: int = 4096
    ) -> None:
        self._read_committed = read
        self._write = write
        self._upsert = upsert
        self._memory: OrderedDict[str, CachedStep] = OrderedDict()
        self._size = memory

    def get(self, key: str, now: float | None = None) -> CachedStep | None:
        now = time.time() if now is None else now
        entry = self._memory.get(key)
        if entry is None:
            entry = self._read(key)
            if entry is None:
                return None
            self._remember(key, entry)
        else:
            self._memory.move_to_end(key)
        if entry.expires is not None and entry.expires <= now:
            return None
        return entry

    def put(
        self,
        key: str,
        *,
        workflow: str,
        step: str,
        output: Mapping[str, Any],
        confidence: float | None,
        versions: Mapping[str, str],
        flags: tuple[str, ...],
        usage: Usage,
        ttl: float | None,
    ) -> None:
        now = time.time()
        expires = now + ttl if ttl is not None else None
        entry = CachedStep(dict(output), confidence, dict(versions), flags, usage, expires)
        self._remember(key, entry)
        row = {
            "key": key,
            "workflow": workflow,
            "step": step,
            "output": dumps(entry.output),
            "confidence": confidence,
            "versions": dumps(entry.versions),
            "flags": dumps(list(flags)),
            "usage": dumps(
                [
                    usage.input_tokens,
                    usage.output_tokens,
                    usage.model_calls,
                    usage.model_seconds,
                    usage.cost,
                ]
            ),
            "created": now,
            "expires": expires,
        }
        self._write([(self._upsert, row)])

    def _remember(self, key: str, entry: CachedStep) -> None:
        self._memory[key] = entry
        self._memory.move_to_end(key)
        while len(self._memory) > self._size:
            self._memory.popitem(last=False)

    def _read(self, key: str) -> CachedStep | None:
        t = schema.step_cache
        rows = self._read_committed(select(t).where(t.c.key == key))
        if not rows:
            return None
        r = rows[0]
        tokens_in, tokens_out, calls, seconds, cost = loads(r.usage)
        return CachedStep(
            output=loads(r.output),
            confidence=r.confidence,
            versions=loads(r.versions),
            flags=tuple(loads(r.flags)),
            usage=Usage(tokens_in, tokens_out, calls, seconds, cost),
            expires=r.expires,
        )
