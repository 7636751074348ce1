"""``open_engine``: every database relayflow opens gets the same settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from relayflow.errors import StoreError
from relayflow.store.database import open_engine, sqlite_file, store_url


def test_a_sqlite_file_is_shared_safely_between_processes(tmp_path: Path) -> None:
    engine = open_engine(str(tmp_path / "runs.db"))  # a bare path means SQLite
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    finally:
        engine.dispose()
    assert (tmp_path / "runs.db").exists()


def test_a_url_without_its_driver_is_a_store_error_not_a_traceback() -> None:
    with pytest.raises(StoreError, match="cannot open the store at nosuchdb://"):
        open_engine("nosuchdb://host/db")


def test_where_a_sqlite_database_lives(tmp_path: Path) -> None:
    assert sqlite_file(str(tmp_path / "runs.db")) == tmp_path / "runs.db"
    assert sqlite_file(f"sqlite:///{tmp_path}/runs.db") == tmp_path / "runs.db"
    assert sqlite_file("sqlite://") is None
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("postgresql+psycopg://u:p@localhost/db") is None
    assert store_url("runs.db") == "sqlite:///runs.db"
    assert store_url("postgresql://h/db") == "postgresql://h/db"
