"""The run store's tables, defined once for SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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

#: records of a batch's source that could not become runs (not valid JSON, not an object, not
#: UTF-8 …): where they are, why, and the start of their text. ``item_key`` is the position the
#: record holds, so the records after it keep their keys whether it is fixed or not.
bad_records = Table(
    "bad_records",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("item_key", Text, primary_key=True),
    Column("location", Text, nullable=False),  # file:line, or file#record
    Column("reason", Text, nullable=False),
    Column("excerpt", Text, nullable=False),
    Column("created", Float, nullable=False),
)

# ---- the server (relayflow serve) -------------------------------------------------------------

#: every registered version of a workflow; ``version`` is the content hash of its YAML
workflow_versions = Table(
    "workflow_versions",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("file", Text, nullable=False),  # where it loads from: its folder resolves paths
    Column("text", Text, nullable=False),
    Column("registered_by", String(200)),
    Column("created", Float, nullable=False),
    Index("ix_workflow_versions_created", "name", "created"),
)

#: every successful registration request (the version row is written once, by the first):
#: who registered what, when, from which source, the hash of the text and every file it names
workflow_registrations = Table(
    "workflow_registrations",
    metadata,
    Column("registration_id", String(32), primary_key=True),
    Column("workflow", String(200), nullable=False),
    Column("version", String(64), nullable=False),
    Column("token_id", String(64)),
    Column("registered_by", String(200), nullable=False),
    Column("ts", Float, nullable=False),
    Column("source", String(10), nullable=False),  # yaml | bundle | path
    Column("files_hash", String(64), nullable=False),
    Column("runs_code", Integer, nullable=False),
    Index("ix_workflow_registrations_workflow", "workflow", "ts"),
)

#: ``Idempotency-Key`` of run and batch submissions, per token and workflow: a retry with the
#: same key and body gets the run (or batch) the first request made; another body is a 409
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("token_id", String(64), primary_key=True),
    Column("workflow", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("kind", String(10), nullable=False),  # run | batch
    Column("body_hash", String(64), nullable=False),
    Column("result_id", String(64), nullable=False),  # the run id or the batch id
    Column("created", Float, nullable=False),
)

#: runs submitted to the server: who submitted them (budgets charge that token), so a restarted
#: server picks up its own queued and running runs, and only those
server_runs = Table(
    "server_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("workflow", String(200), nullable=False),
    Column("workflow_version", String(64), nullable=False),
    Column("token_id", String(64)),
    Column("created", Float, nullable=False),
)

#: API tokens: only a hash of the secret is kept; ``grants`` is JSON [{workflow, role, …}]
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("hash", String(128), nullable=False, unique=True),
    Column("grants", Text, nullable=False),
    Column("team", String(200)),
    Column("created", Float, nullable=False),
    Column("revoked", Float),
)

#: every request refused for lack of a role (403) or with an unknown token (401)
denials = Table(
    "denials",
    metadata,
    Column("denial_id", String(64), primary_key=True),
    Column("ts", Float, nullable=False),
    Column("token_id", String(64)),
    Column("token_name", String(200)),
    Column("action", String(40), nullable=False),
    Column("workflow", String(200)),
    Column("needed", String(200), nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_denials_ts", "ts"),
)

#: who is looking at a review item now (the review queue's claim)
review_claims = Table(
    "review_claims",
    metadata,
    Column("review_id", String(300), primary_key=True),
    Column("claimed_by", String(200), nullable=False),
    Column("token_id", String(64)),
    Column("claimed", Float, nullable=False),
)

# ---- budgets (govern/ledger.py) ---------------------------------------------------------------
# Amounts of money are integers in billionths of the prices' unit: sums are exact, and a limit
# of 0.10 admits exactly ten calls of 0.01.

#: what each budget subject (a workflow, a team, a token) spent in one period (``span``:
#: ``2026-11-25``, ``2026-11`` or ``all``)
budget_counters = Table(
    "budget_counters",
    metadata,
    Column("scope", String(10), primary_key=True),
    Column("subject", String(200), primary_key=True),
    Column("period", String(10), primary_key=True),
    Column("span", String(10), primary_key=True),
    Column("cost_nanos", BigInteger, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("calls", BigInteger, nullable=False),
    Column("updated", Float, nullable=False),
)

#: the worst-case cost of model calls in flight, held against each counter they count on until
#: the call settles; a hold of a process that died stops counting at ``expires``
budget_holds = Table(
    "budget_holds",
    metadata,
    Column("hold_id", String(32), primary_key=True),
    Column("scope", String(10), primary_key=True),
    Column("subject", String(200), primary_key=True),
    Column("period", String(10), primary_key=True),
    Column("span", String(10), primary_key=True),
    Column("cost_nanos", BigInteger, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("expires", Float, nullable=False),
    Index("ix_budget_holds_counter", "scope", "subject", "period", "span"),
)

#: a soft limit crossed or a hard limit that refused a call, once per counter and ``kind``
#: (``soft currency``, ``hard tokens`` …); ``count`` is how many calls it refused
budget_alerts = Table(
    "budget_alerts",
    metadata,
    Column("scope", String(10), primary_key=True),
    Column("subject", String(200), primary_key=True),
    Column("period", String(10), primary_key=True),
    Column("span", String(10), primary_key=True),
    Column("kind", String(20), primary_key=True),
    Column("workflow", String(200), nullable=False),
    Column("message", Text, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("first", Float, nullable=False),
    Column("last", Float, nullable=False),
)
