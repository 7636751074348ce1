"""Rate limits per model endpoint: requests and tokens per minute, awaited before each call.

Each endpoint has one leaky bucket per measure (aiolimiter), shared by every workflow in the
process that calls it. A call over the rate waits for room; it never fails for it. Buckets are
per event loop (aiolimiter's waiters are futures of one loop).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Hashable

from aiolimiter import AsyncLimiter

from relayflow.providers.base import RateLimitSpec

_MINUTE = 60.0


class RateLimiter:
    """The requests-per-minute and tokens-per-minute buckets of one endpoint."""

    def __init__(self, spec: RateLimitSpec) -> None:
        self.spec = spec
        self._buckets: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[AsyncLimiter | None, AsyncLimiter | None]
        ] = weakref.WeakKeyDictionary()

    def _for(
        self, loop: asyncio.AbstractEventLoop
    ) -> tuple[AsyncLimiter | None, AsyncLimiter | None]:
        buckets = self._buckets.get(loop)
        if buckets is None:
            rpm, tpm = self.spec.requests_per_minute, self.spec.tokens_per_minute
            buckets = (
                AsyncLimiter(rpm, _MINUTE) if rpm else None,
                AsyncLimiter(tpm, _MINUTE) if tpm else None,
            )
            self._buckets[loop] = buckets
        return buckets

    async def wait(self, tokens: int = 0) -> None:
        """Return when one more call of about ``tokens`` tokens fits both rates. A call larger
        than a whole minute's tokens waits for an empty bucket and then goes."""
        requests, token_bucket = self._for(asyncio.get_running_loop())
        if requests is not None:
            await requests.acquire(1)
        if token_bucket is not None and tokens > 0:
            await token_bucket.acquire(min(tokens, token_bucket.max_rate))


_lock = threading.Lock()
_limiters: dict[Hashable, RateLimiter] = {}


def rate_limiter(endpoint: Hashable, spec: RateLimitSpec) -> RateLimiter:
    """The process's limiter of ``endpoint`` (a provider, model and URL) under ``spec``."""
    key = (endpoint, spec)
    with _lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = _limiters[key] = RateLimiter(spec)
        return limiter


def estimate_tokens(text: str, max_tokens: int) -> int:
    """What a call counts against a tokens-per-minute limit, as endpoints count it at request
    time: the prompt's tokens (about four characters each) plus ``max_tokens``."""
    return len(text) // 4 + 1 + max_tokens
