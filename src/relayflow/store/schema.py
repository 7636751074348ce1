"""The run store's tables, defined once for SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# JSON payloads are stored as text: the same bytes on every backend, and written through the
# driver's own executemany on the hot path.
runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("workflow", String(200), nullable=False),
    Column("workflow_version", String(64), nullable=False),
    Column("batch_id", String(64)),
    Column("item_key", Text),
    Column("status", String(20), nullable=False),
    Column("input", Text, nullable=False),
    Column("output", Text),
    Column("error", Text),
    Column("waiting_step", String(200)),
    Column("started", Float, nullable=False),
    Column("ended", Float),
    Column("updated", Float, nullable=False),
    Index("ix_runs_batch", "batch_id", "item_key"),
    Index("ix_runs_workflow_status", "workflow", "status"),
)

steps = Table(
    "steps",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("step", String(200), primary_key=True),
    Column("agent_type", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("actor", String(10), nullable=False),
    Column("output", Text),
    Column("confidence", Float),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("model_calls", Integer, nullable=False),
    Column("model_seconds", Float, nullable=False),
    Column("cost", Float, nullable=False),
    Column("versions", Text, nullable=False),
    Column("flags", Text, nullable=False),
    Column("error", Text),
    Column("started", Float),
    Column("ended", Float),
)

reviews = Table(
    "reviews",
    metadata,
    Column("review_id", String(64), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("step", String(200), nullable=False),
    Column("workflow", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("input", Text, nullable=False),
    Column("output", Text, nullable=False),
    Column("confidence", Float),
    Column("decision", String(20)),
    Column("decided_output", Text),
    Column("reviewer", String(200)),
    Column("created", Float, nullable=False),
    Column("decided", Float),
    Index("ix_reviews_status", "status", "created"),
    Index("ix_reviews_run", "run_id", "step"),
)

feedback = Table(
    "feedback",
    metadata,
    # "review:<run>:<step>" for a reviewer's decision, a random id for labels added by hand:
    # a natural key, so that replaying the store's log never adds a label twice
    Column("feedback_id", String(80), primary_key=True),
    Column("workflow", String(200), nullable=False),
    Column("run_id", String(64)),
    Column("step", String(200)),
    Column("item_key", Text),
    Column("label", Text, nullable=False),
    Column("source", String(20), nullable=False),
    Column("created", Float, nullable=False),
    Index("ix_feedback_workflow", "workflow", "created"),
)

# Step results reused for the same input and versions (engine/cache.py). ``key`` is the hash
# of the agent type, its versions, its settings and its input.
step_cache = Table(
    "step_cache",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("workflow", String(200), nullable=False),
    Column("step", String(200), nullable=False),
    Column("output", Text, nullable=False),
    Column("confidence", Float),
    Column("versions", Text, nullable=False),
    Column("flags", Text, nullable=False),
    Column("usage", Text, nullable=False),
    Column("created", Float, nullable=False),
    Column("expires", Float),
)

batches = Table(
    "batches",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("workflow", String(200), nullable=False),
    Column("workflow_file", Text, nullable=False),
    Column("inputs", Text),
    Column("concurrency", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("runs", Integer, nullable=False),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
)
