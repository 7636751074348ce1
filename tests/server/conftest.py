"""Fixtures of the server tests: a store with tokens of each role, tiny workflows, and a real
``relayflow serve`` on loopback shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.server.helpers import Server, client, make_token, serving, write_workflows


@dataclass
class Site:
    server: Server
    store: str
    folder: Path
    files: dict[str, Path]
    tokens: dict[str, str]

    def as_(self, who: str) -> httpx.Client:
        return client(self.server, self.tokens[who])


def make_tokens(store: str) -> dict[str, str]:
    return {
        "admin": make_token(store, "root", "*=admin"),
        "operator": make_token(store, "ops", "reviewed=operator", "slow=operator"),
        "reviewer": make_token(store, "rev", "reviewed=reviewer"),
        "viewer": make_token(store, "view", "reviewed=viewer"),
        "sensitive": make_token(store, "auditor", "reviewed=viewer+sensitive"),
        "other": make_token(store, "stranger", "elsewhere=admin"),
    }


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("site")
    files = write_workflows(folder)
    store = str(folder / "runs.db")
    tokens = make_tokens(store)
    with serving(store, folder, max_body=64 * 1024) as server:
        with client(server, tokens["admin"]) as admin:
            for file in files.values():
                assert admin.post("/v1/workflows", json={"path": str(file)}).status_code == 201
        yield Site(server, store, folder, files, tokens)
