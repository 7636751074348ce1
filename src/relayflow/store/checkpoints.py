"""The checkpoints of retrain steps: each step's drift detector and schedule counters, kept as
JSON per workflow and step so that a restarted process goes on where the last one stopped."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from relayflow.errors import StoreError
from relayflow.store.registry_schema import retrain_state

__all__ = ["load_state", "save_state"]


def load_state(engine: Engine, workflow: str, step: str) -> dict[str, Any] | None:
    """The checkpoint of a retrain step (its drift monitor and schedule counters)."""
    t = retrain_state
    query = select(t.c.state).where(t.c.workflow == workflow, t.c.step == step)
    try:
        with engine.connect() as conn:
            text = conn.execute(query).scalar()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the store at {engine.url}: {exc}") from exc
    return None if text is None else dict(json.loads(text))


def save_state(engine: Engine, workflow: str, step: str, state: Mapping[str, Any]) -> None:
    t = retrain_state
    ins = (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(t)
    stmt = ins.on_conflict_do_update(
        index_elements=[t.c.workflow, t.c.step],
        set_={"state": ins.excluded.state, "updated": ins.excluded.updated},
    )
    row = {
        "workflow": workflow,
        "step": step,
        "state": json.dumps(state, default=str),
        "updated": time.time(),
    }
    try:
        with engine.begin() as conn:
            conn.execute(stmt, row)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot write the store at {engine.url}: {exc}") from exc
