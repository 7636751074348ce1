"""The one exception tree of relayflow. Callers catch by what they can do about it.

    RelayflowError
    ├── SpecError          a workflow file is wrong; carries every Problem with file:line
    ├── AgentError         an agent could not do its step (bad script, bad output, failed check)
    ├── ProviderError      a model backend failed
    │   ├── ProviderTimeout
    │   ├── RateLimited
    │   └── CircuitOpen    a circuit breaker refuses calls to a failing provider for a while
    ├── StoreError         the run store could not be read or written
    ├── BudgetExceeded     a hard budget stops new work
    └── AccessDenied       the caller lacks the role for this action

Errors from libraries (SQLAlchemy, httpx, openai, fsspec, llama.cpp) are converted where they
enter our code, with ``raise ... from exc``; none leaks to a user.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a workflow file, printed as ``file:line: field: message — fix``."""

    file: str
    line: int
    field: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.field}: " if self.field else f"{where}: "
        text += self.message
        text = f"{text} — {self.fix}" if self.fix else text
        # one line, whatever a key or value of the user's file holds (a newline, U+2028 …)
        return text if text.isprintable() else "".join(map(_visible, text))


def _visible(char: str) -> str:
    return char if char.isprintable() else repr(char)[1:-1]


class RelayflowError(Exception):
    """Base of every error relayflow raises on purpose."""


class SpecError(RelayflowError):
    """A workflow file is invalid. ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class AgentError(RelayflowError):
    """An agent failed its step in a way that retrying the same input will not fix by itself."""


class ProviderError(RelayflowError):
    """A model provider failed (HTTP 5xx, malformed answer, a local model that would not load)."""


class ProviderTimeout(ProviderError):
    """A model provider did not answer in time."""


class RateLimited(ProviderError):
    """A model provider refused the call for exceeding its rate limit."""


class CircuitOpen(ProviderError):
    """A circuit breaker is open: the provider failed repeatedly and is not called until its
    reset timeout passes. ``retry_after`` is the number of seconds until a trial call."""

    def __init__(self, message: str, *, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreError(RelayflowError):
    """The run store could not be read or written."""


class BudgetExceeded(RelayflowError):
    """A hard budget or quota forbids starting more work."""


class AccessDenied(RelayflowError):
    """The caller's role does not allow this action."""
