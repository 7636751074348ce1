"""SIGTERM inside a command's event loop (cli/common.py run_async): handled as Ctrl-C, and the
process's own handler put back afterwards."""

from __future__ import annotations

import asyncio
import os
import signal
from types import FrameType

import pytest

from relayflow.cli.common import Stop, run_async
from relayflow.cli.output import Terminated


def _terminate_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_cancels_the_command_and_says_so() -> None:
    cleaned: list[str] = []

    async def main() -> str:
        asyncio.get_running_loop().call_soon(_terminate_self)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cleaned.append("runs cancelled")
            return "stopped cleanly"
        return "not stopped"

    stop = Stop()
    assert run_async(main(), stop) == "stopped cleanly"
    assert cleaned == ["runs cancelled"]
    assert (stop.signum, stop.exit_code) == (signal.SIGTERM, 143)


def test_a_command_that_lets_the_cancellation_out_raises_terminated() -> None:
    async def main() -> None:
        asyncio.get_running_loop().call_soon(_terminate_self)
        await asyncio.sleep(60)

    with pytest.raises(Terminated):
        run_async(main())


def test_without_a_signal_the_exit_code_is_ctrl_cs() -> None:
    async def main() -> int:
        return 7

    stop = Stop()
    assert run_async(main(), stop) == 7
    assert stop.exit_code == 130


def test_the_previous_sigterm_handler_is_put_back() -> None:
    seen: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:

        async def main() -> None:
            pass

        run_async(main())
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_cli_reports_a_terminated_command_with_status_143() -> None:
    import typer
    from typer.testing import CliRunner

    from relayflow.cli.output import GuardedGroup

    app = typer.Typer(cls=GuardedGroup)

    @app.command()
    def stopped() -> None:
        raise Terminated

    @app.command()
    def other() -> None:
        """A second command, so that the group needs a command name."""

    result = CliRunner().invoke(app, ["stopped"])
    assert (result.exit_code, result.stderr) == (143, "terminated\n")
