"""The one exception tree of relayflow. Callers catch by what they can do about it.

    RelayflowError
    ├── SpecError          a workflow file is wrong; carries every Problem with file:line
    ├── ConfigError        the setup around a workflow is wrong: a flag, an environment
    │                      variable, a server option, a missing extra or file it names
    ├── InputError         a value given for this one call is wrong: a record, an argument,
    │   │                  a flag's value; fix it and call again
    │   └── TooManyBadRecords  a batch's source held more unreadable records than it allows
    ├── NotFound           no workflow, run, review, version, label, prompt, variant … of
    │                      that name or id (or none the caller may see)
    ├── Conflict           it exists, but its state forbids this now (a decided review, a
    │                      production version, too few labels to retrain on yet)
    ├── Unauthenticated    no credentials, or unknown or revoked ones
    ├── AccessDenied       the caller is known but lacks the role for this action
    ├── AgentError         an agent could not do its step (bad script, bad output, failed check)
    ├── ProviderError      a model backend failed
    │   ├── ProviderTimeout
    │   ├── RateLimited
    │   └── CircuitOpen    a circuit breaker refuses calls to a failing provider for a while
    ├── StoreError         the run store could not be read or written
    └── BudgetExceeded     a hard budget stops new work

The base class is never raised itself (a test reads the source for ``RelayflowError(``): every
raise says which of these it is, so that a caller, the CLI and the HTTP apps (errors_http.py)
can tell a user's mistake from a failure.

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


class ConfigError(RelayflowError):
    """The setup is wrong, not a workflow file: a flag or server option, an environment
    variable, an extra that is not installed, a file the settings name that is missing."""


class InputError(RelayflowError):
    """A value given for this one call is wrong (a record, an argument, a flag's value)."""


class TooManyBadRecords(InputError):
    """The batch's source had more bad records than the batch allows; it stopped once the runs
    in flight ended, and can be resumed."""


class NotFound(RelayflowError):
    """No such workflow, run, review, version, label or name (or none this caller may see)."""


class Conflict(RelayflowError):
    """The thing exists but is not in a state that allows this (a decided review …)."""


class Unauthenticated(RelayflowError):
    """No credentials, or a token that is unknown or revoked (HTTP 401, not 403)."""


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
