"""Fixtures for the command-line tests: a project folder that is the current directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.cli_support import Cli


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RELAYFLOW_STORE", raising=False)
    monkeypatch.delenv("RELAYFLOW_DEBUG", raising=False)
    return Cli(tmp_path)
