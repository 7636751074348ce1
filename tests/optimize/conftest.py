"""The quiz provider is registered for every optimizer test; `cli` runs the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.cli_support import Cli
from tests.optimize.quiz import register


@pytest.fixture(autouse=True)
def _quiz_provider() -> None:
    register()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """A project folder that is the current directory, and `relayflow` in it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RELAYFLOW_STORE", raising=False)
    monkeypatch.delenv("RELAYFLOW_DEBUG", raising=False)
    return Cli(tmp_path)
