"""A circuit breaker per provider: stop calling a backend that keeps failing, try again later.

States: ``closed`` (calls pass; consecutive failures are counted), ``open`` (calls are refused
with :class:`~relayflow.errors.CircuitOpen` until ``reset_timeout`` seconds have passed) and
``half_open`` (the timeout passed: one trial call goes through; success closes the circuit,
failure opens it again for another ``reset_timeout``). The clock is injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from relayflow.errors import CircuitOpen

T = TypeVar("T")

State = Literal["closed", "open", "half_open"]


def _always(exc: BaseException) -> bool:
    return True


class CircuitBreaker:
    """Consecutive-failure circuit breaker. ``is_failure`` decides which exceptions count (by
    default every ``Exception``; a caller may exclude, say, a 4xx that says nothing about the
    backend's health); exceptions that do not count still end a half-open trial as a success of
    the transport, since the backend answered."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        is_failure: Callable[[BaseException], bool] = _always,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_timeout < 0:
            raise ValueError("reset_timeout must not be negative")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.is_failure = is_failure
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None  # set while open or half-open
        self._trial = False  # a half-open trial call is in flight

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state!r}, failures={self._failures})"

    @property
    def state(self) -> State:
        opened_at = self._opened_at
        if opened_at is None:
            return "closed"
        if self._trial or self._clock() - opened_at >= self.reset_timeout:
            return "half_open"
        return "open"

    @property
    def failures(self) -> int:
        """Consecutive failures counted since the last success."""
        return self._failures

    @property
    def retry_after(self) -> float:
        """Seconds until a trial call is allowed; 0 when calls may go through now."""
        opened_at = self._opened_at
        if opened_at is None or self._trial:
            return 0.0
        return max(0.0, opened_at + self.reset_timeout - self._clock())

    def allow(self) -> bool:
        """Whether a call may go now. Closed: yes. Open: no. Half-open: yes for exactly one
        trial call (the caller must then report it with ``record_success``/``record_failure``)."""
        if self._opened_at is None:  # fast path: no lock while healthy
            return True
        with self._lock:
            opened_at = self._opened_at
            if opened_at is None:
                return True
            if self._trial or self._clock() - opened_at < self.reset_timeout:
                return False
            self._trial = True
            return True

    def record_success(self) -> None:
        if self._opened_at is None and self._failures == 0:
            return
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._trial or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
            self._trial = False

    def release(self) -> None:
        """Give back a half-open trial without a verdict (the call was cancelled), so that the
        next caller may try."""
        with self._lock:
            self._trial = False

    def reset(self) -> None:
        """Close the circuit and forget the failures."""
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial = False

    def refuse(self) -> CircuitOpen:
        """The error to raise when ``allow()`` said no."""
        wait = self.retry_after
        return CircuitOpen(
            f"circuit breaker for {self.name!r} is open after {self._failures} consecutive "
            f"failure(s); next trial call in {wait:.1f}s",
            retry_after=wait,
        )

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()`` through the breaker; raises CircuitOpen without calling while open."""
        if not self.allow():
            raise self.refuse()
        try:
            result = await fn()
        except Exception as exc:
            if self.is_failure(exc):
                self.record_failure()
            else:
                self.record_success()
            raise
        except BaseException:  # cancelled: no verdict on the backend
            self.release()
            raise
        self.record_success()
        return result


_registry_lock = threading.Lock()
_breakers: dict[str, CircuitBreaker] = {}


def breaker_for(
    name: str, *, failure_threshold: int = 5, reset_timeout: float = 30.0
) -> CircuitBreaker:
    """The process-wide breaker for ``name`` (a provider alias or a service URL), created on first
    use. A later call with other settings updates them, keeping the counted state."""
    with _registry_lock:
        breaker = _breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(
                name, failure_threshold=failure_threshold, reset_timeout=reset_timeout
            )
            _breakers[name] = breaker
        else:
            breaker.failure_threshold = failure_threshold
            breaker.reset_timeout = reset_timeout
        return breaker


def reset_breakers() -> None:
    """Forget every process-wide breaker (tests; a long-lived server after a deploy)."""
    with _registry_lock:
        _breakers.clear()
