"""The feedback loop's tables (model/prompt versions, their history, drift checkpoints), defined
on the run store's ``metadata``: importing this module makes ``create_all`` create them too."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from relayflow.store.schema import metadata

__all__ = [
    "metadata",
    "model_events",
    "model_versions",
    "prompt_uses",
    "retrain_state",
    "version_labels",
]

# A version history is kept per workflow: ``name`` is a ``models:`` alias or an inference step,
# and two workflows with a step of the same name have two histories (schema version 3;
# store/versions_by_workflow.py moved the rows of older stores).

#: one row per registered version; ``version`` is the sha256 prefix of the artifact's bytes
model_versions = Table(
    "model_versions",
    metadata,
    Column("workflow", String(200), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("kind", String(10), nullable=False),  # sklearn | prompt
    # a file path (sklearn) or the prompt's text (prompt)
    Column("artifact", Text, nullable=False),
    # where the production version is materialised (the models: file, the prompt template)
    Column("target", Text),
    Column("parent", String(64)),
    Column("status", String(20), nullable=False),  # candidate|production|archived|rejected
    Column("metrics", Text, nullable=False),
    Column("card", Text, nullable=False),
    Column("created", Float, nullable=False),
    Index("ix_model_versions_status", "workflow", "name", "status"),
)

#: every change of a name's production version, in order: promote, adopt, rollback, reject
model_events = Table(
    "model_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("workflow", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("version", String(64), nullable=False),
    Column("action", String(20), nullable=False),
    Column("note", Text, nullable=False),
    Column("ts", Float, nullable=False),
    Index("ix_model_events_name", "workflow", "name", "event_id"),
)

#: human labels (``v3``, ``staging``): each points at one version of a name; moving one is a
#: ``label`` row in ``model_events``. ``production`` is not stored here: it is the status above.
version_labels = Table(
    "version_labels",
    metadata,
    Column("workflow", String(200), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("label", String(64), primary_key=True),
    Column("version", String(64), nullable=False),
    Column("updated", Float, nullable=False),
)

#: which workflow used which prompt version (registered when a run starts), first and last seen;
#: for a version of `UNKNOWN_WORKFLOW` (store/versions.py) the workflows that shared it
prompt_uses = Table(
    "prompt_uses",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("workflow", String(200), primary_key=True),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
)

#: a retrain step's drift detector and schedule counters, checkpointed as JSON
retrain_state = Table(
    "retrain_state",
    metadata,
    Column("workflow", String(200), primary_key=True),
    Column("step", String(200), primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated", Float, nullable=False),
)
