"""Shared pieces of the command line: consoles, JSON printing, and the one place where errors
become one-line messages and exit codes instead of tracebacks."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from rich.console import Console
    from typer._click import Context  # the Context type that TyperGroup.invoke declares

DEBUG_ENV = "RELAYFLOW_DEBUG"
#: the width of tables written to a pipe or a file
PIPE_WIDTH = 200


class UserError(Exception):
    """Something the user can fix (a bad option value, a missing file); printed as ``error: …``."""


class Terminated(Exception):
    """A command stopped by SIGTERM that had nothing of its own to report (exit status 143)."""


def console(*, stderr: bool = False) -> Console:
    """A Rich console on stdout (or stderr), made per command so it sees the current streams."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # piped or captured output is read by programs and wide logs: do not squeeze it to 80
    wide = not stream.isatty() and not os.environ.get("COLUMNS")
    return Console(stderr=stderr, highlight=False, width=PIPE_WIDTH if wide else None)


def error_line(message: str) -> None:
    """Print ``error: …`` to stderr, one line per line of ``message`` (never wrapped), with any
    credential it quotes masked (relayflow/scrub.py)."""
    from relayflow.scrub import scrub

    sys.stdout.flush()  # keep the order of what a terminal shows from both streams
    for line in scrub(str(message)).splitlines() or [""]:
        typer.echo(f"error: {line}", err=True)


def fail(message: str) -> NoReturn:
    """Print ``message`` as an error and exit with status 1."""
    error_line(message)
    raise typer.Exit(1)


def note(message: str) -> None:
    """A plain line for a person, on stderr (stdout is kept for data)."""
    sys.stdout.flush()
    typer.echo(message, err=True)


def dumps(value: Any, *, indent: int | None = 2) -> str:
    from relayflow.text import clean

    # a lone surrogate (from a model, or a store written before inputs were checked) cannot
    # be written to a UTF-8 terminal: it is shown as U+FFFD
    return json.dumps(clean(value), indent=indent, ensure_ascii=False, default=str)


def print_json(value: Any, *, indent: int | None = 2) -> None:
    """JSON on stdout as plain text, so that it stays valid when piped."""
    typer.echo(dumps(value, indent=indent))


def parse_json(text: str, what: str) -> Any:
    from relayflow.text import surrogate_message, surrogate_path

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{what} is not valid JSON: {exc.msg} at column {exc.colno} — "
            "quote it for the shell, e.g. '{\"id\": 1}'"
        ) from None
    where = surrogate_path(value)
    if where is not None:
        raise UserError(f"{what}: {surrogate_message(where)}")
    return value


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    value = parse_json(text, what)
    if not isinstance(value, dict):
        raise UserError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def local_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def short(text: str | None, width: int = 60) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn relayflow's own errors into ``error: …`` lines and exit status 1."""
    from relayflow.errors import RelayflowError, SpecError

    try:
        yield
    except SpecError as exc:
        for problem in exc.problems:
            error_line(str(problem))
        raise typer.Exit(1) from None
    except (RelayflowError, UserError) as exc:
        fail(flat(str(exc)) or type(exc).__name__)  # one problem, one line


class GuardedGroup(TyperGroup):
    """The top command group: no traceback reaches a user unless RELAYFLOW_DEBUG=1."""

    def invoke(self, ctx: Context) -> Any:
        try:
            with user_errors():
                return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError):
            raise  # Typer reports these itself (a closed pipe, e.g. `| head`, quietly)
        except KeyboardInterrupt:
            note("interrupted")
            raise typer.Exit(130) from None
        except Terminated:
            note("terminated")
            raise typer.Exit(143) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                raise
            error_line(
                f"unexpected {type(exc).__name__}: {short(flat(str(exc)), 300) or '(no message)'} "
                f"(run with {DEBUG_ENV}=1 for the traceback)"
            )
            raise typer.Exit(1) from None


def flat(text: str) -> str:
    """``text`` on one line: newlines and runs of spaces become one space."""
    return " ".join(text.split())
