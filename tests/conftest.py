"""Fixtures shared by the whole suite: the run store on every backend."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """The scrubber's secrets live per process; each test starts without another's."""
    yield
    from relayflow.scrub import forget_all

    forget_all()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A fresh, empty store URL: a SQLite file, and PostgreSQL when make test started one."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/runs.db"
        return
    url = os.environ.get("RELAYFLOW_TEST_PG_URL")
    if not url:
        pytest.skip("no PostgreSQL: run through `make test`, which starts one on loopback")
    from sqlalchemy import create_engine

    from relayflow.store.migrations import metadata  # every table, relayflow_meta included

    engine = create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()
    yield url
    engine = create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()
