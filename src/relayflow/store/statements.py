"""The store's writes, compiled once for its dialect, and the JSON encoding of payloads.

Statements are compiled by SQLAlchemy for SQLite or PostgreSQL and executed through the
driver's own cursor: the hot path pays the driver's cost, not the ORM's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from relayflow.store import schema
from relayflow.text import clean, clean_text, has_surrogate


def dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def loads(text: str | None) -> Any:
    """A stored payload. ``dumps`` escapes every non-ASCII character, so a lone surrogate that
    a model, a source or an older server let in reads back as one: it becomes U+FFFD here,
    since nothing downstream (JSON responses, pages, the terminal) can encode it."""
    if text is None:
        return None
    value = json.loads(text)
    if "\\ud" in text or "\\uD" in text:
        value = clean(value)
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


class Statement:
    """A statement compiled for the dialect, with its parameters built from a row dict."""

    def __init__(self, name: str, stmt: Any, engine: Engine) -> None:
        self.name = name
        compiled = stmt.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        self.positional = compiled.positiontup is not None
        self.keys: list[str] = list(compiled.positiontup or [])
        # literal values written into the statement itself (``status == 'pending'``) are
        # anonymous binds; their values come from the compiled statement, not the row
        self.fixed = {
            name: bind.effective_value
            for name, bind in compiled.binds.items()
            if not bind.required
            and not bind.callable
            and bind.value is not None
            or name.startswith("param_")
        }

    def params(self, row: Mapping[str, Any]) -> Any:
        row = _encodable(row)
        if self.positional:
            if self.fixed:
                return tuple(self.fixed[k] if k in self.fixed else row[k] for k in self.keys)
            return tuple([row[k] for k in self.keys])
        return {**self.fixed, **row} if self.fixed else row


def _encodable(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """``row`` with U+FFFD for each lone surrogate in a text value (a script's error message, a
    source's item key): the driver refuses such text, and with it the whole batch of writes
    and every later flush that retries it. JSON payloads are ASCII (``dumps``) and skip this."""
    bad = [k for k, v in row.items() if isinstance(v, str) and not v.isascii() and has_surrogate(v)]
    if not bad:
        return row
    return {**row, **{k: clean_text(row[k]) for k in bad}}


class Statements:
    """Every write the store makes. Each is an upsert or a guarded update, so replaying the
    store's log after a crash is harmless."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.by_name: dict[str, Statement] = {}
        runs, steps, reviews = schema.runs, schema.steps, schema.reviews
        ins = self._insert(runs)
        self.run_started = self._compile(
            "run_started",
            ins.on_conflict_do_update(
                index_elements=[runs.c.run_id],
                set_={
                    "status": ins.excluded.status,
                    "updated": ins.excluded.updated,
                    "error": None,
                    "waiting_step": None,
                },
            ),
        )
        ins = self._insert(steps)
        self.step_upsert = self._compile(
            "step_upsert",
            ins.on_conflict_do_update(
                index_elements=[steps.c.run_id, steps.c.step],
                set_={c.name: ins.excluded[c.name] for c in steps.c if not c.primary_key},
            ),
        )
        self.run_update = self._compile(
            "run_update",
            update(runs)
            .where(runs.c.run_id == bindparam("b_run_id"))
            .values(
                status=bindparam("b_status"),
                output=bindparam("b_output"),
                error=bindparam("b_error"),
                ended=bindparam("b_ended"),
                waiting_step=bindparam("b_waiting"),
                updated=bindparam("b_updated"),
            ),
        )
        ins = self._insert(reviews)
        self.review_insert = self._compile(
            "review_insert", ins.on_conflict_do_nothing(index_elements=[reviews.c.review_id])
        )
        self.review_decide = self._compile(
            "review_decide",
            update(reviews)
            .where(reviews.c.run_id == bindparam("b_run_id"))
            .where(reviews.c.step == bindparam("b_step"))
            .where(reviews.c.status == "pending")
            .values(
                status=bindparam("b_status"),
                decision=bindparam("b_decision"),
                decided_output=bindparam("b_output"),
                reviewer=bindparam("b_reviewer"),
                decided=bindparam("b_ts"),
            ),
        )
        ins = self._insert(schema.feedback)
        self.feedback_insert = self._compile(
            "feedback_insert",
            ins.on_conflict_do_nothing(index_elements=[schema.feedback.c.feedback_id]),
        )
        cache = schema.step_cache
        ins = self._insert(cache)
        self.cache_upsert = self._compile(
            "cache_upsert",
            ins.on_conflict_do_update(
                index_elements=[cache.c.key],
                set_={
                    c.name: ins.excluded[c.name] for c in schema.step_cache.c if not c.primary_key
                },
            ),
        )
        ins = self._insert(schema.batches)
        self.batch_upsert = self._compile(
            "batch_upsert",
            ins.on_conflict_do_update(
                index_elements=[schema.batches.c.batch_id],
                set_={"status": ins.excluded.status, "updated": ins.excluded.updated},
            ),
        )
        bad = schema.bad_records
        ins = self._insert(bad)
        self.bad_record_upsert = self._compile(
            "bad_record_upsert",
            ins.on_conflict_do_update(
                index_elements=[bad.c.batch_id, bad.c.item_key],
                set_={c: ins.excluded[c] for c in ("location", "reason", "excerpt", "created")},
            ),
        )
        self.batch_update = self._compile(
            "batch_update",
            update(schema.batches)
            .where(schema.batches.c.batch_id == bindparam("b_batch_id"))
            .values(
                status=bindparam("b_status"), runs=bindparam("b_runs"), updated=bindparam("b_ts")
            ),
        )

    def _insert(self, table: Any) -> Any:
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _compile(self, name: str, stmt: Any) -> Statement:
        compiled = Statement(name, stmt, self._engine)
        self.by_name[name] = compiled
        return compiled
