"""Labelled data for retraining, read from the run store: each run's output of the target step
(its inputs and the model's answer) with a label — a reviewer's decision or a label added by
hand (the ``feedback`` table), else the reference the item carried (``evaluate.reference``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from relayflow.errors import ConfigError, InputError
from relayflow.eval.scoring import accuracy
from relayflow.learn.storage import read
from relayflow.store import schema

#: the ``IN (…)`` lists of a query are sent in chunks of this many ids
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Fields:
    """Where things are in a step's output: the model's answer, the carried reference, the id."""

    output: str = "output"
    reference: str = "expected"
    key: str = "id"


@dataclass(frozen=True, slots=True)
class LabelledRow:
    """One run's view of the target step with the label it should have produced."""

    run_id: str
    key: str
    inputs: Mapping[str, Any]
    prediction: Any
    label: Any
    source: str  # review | manual | carried | golden
    ts: float

    @property
    def corrected(self) -> bool:
        """A person gave a label other than the model's answer."""
        return self.source in ("review", "manual") and not _same(self.prediction, self.label)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str | int | float | bool) and isinstance(b, str | int | float | bool):
        return accuracy([a], [b]).value == 1.0
    return bool(a == b)


def label_of(label: Mapping[str, Any], fields: Fields) -> Any:
    """The answer a feedback label gives: the output field, else the reference, else ``label``."""
    for name in (fields.output, fields.reference, "label"):
        if label.get(name) is not None:
            return label[name]
    return None


def labelled_rows(
    engine: Engine,
    *,
    workflow: str,
    step: str,
    fields: Fields,
    runs: Sequence[str] | None = None,
    since: float | None = None,
    limit: int = 5000,
) -> list[LabelledRow]:
    """The newest ``limit`` labelled runs of ``step`` (only ``runs``, or those since ``since``
    when given), oldest first. A feedback label wins over the reference the item carried."""
    s, r = schema.steps, schema.runs
    query = (
        select(s.c.run_id, s.c.output, s.c.ended, r.c.item_key)
        .join(r, r.c.run_id == s.c.run_id)
        .where(r.c.workflow == workflow, s.c.step == step, s.c.status == "finished")
        .order_by(s.c.ended.desc())
        .limit(limit)
    )
    if since is not None:
        query = query.where(s.c.ended >= since)
    found = []
    for ids in _chunks(runs) if runs is not None else [None]:
        found.extend(read(engine, query if ids is None else query.where(s.c.run_id.in_(ids))))
    labels = _feedback(engine, workflow, [row.run_id for row in found], fields)
    rows = []
    for run_id, output_text, ended, item_key in found:
        output = json.loads(output_text) if output_text else {}
        if not isinstance(output, dict):
            continue
        label, source = labels.get(run_id, (output.get(fields.reference), "carried"))
        if label is None:
            continue
        key = output.get(fields.key)
        rows.append(
            LabelledRow(
                run_id=run_id,
                key=str(key) if key is not None else (item_key or run_id),
                inputs=output,
                prediction=output.get(fields.output),
                label=label,
                source=source,
                ts=ended or 0.0,
            )
        )
    rows.sort(key=lambda row: row.ts)
    return rows[-limit:]


def _feedback(
    engine: Engine, workflow: str, run_ids: list[str], fields: Fields
) -> dict[str, tuple[Any, str]]:
    """The latest feedback label of each run: ``run_id -> (label, source)``."""
    f = schema.feedback
    labels: dict[str, tuple[Any, str]] = {}
    for ids in _chunks(run_ids):
        query = (
            select(f.c.run_id, f.c.label, f.c.source)
            .where(f.c.workflow == workflow, f.c.run_id.in_(ids))
            .order_by(f.c.created)
        )
        for run_id, text, source in read(engine, query):
            value = json.loads(text)
            label = label_of(value, fields) if isinstance(value, dict) else value
            if label is not None:
                labels[run_id] = (label, source)
    return labels


def wait_for_runs(engine: Engine, step: str, run_ids: Sequence[str], timeout: float = 5.0) -> None:
    """Wait (up to ``timeout`` seconds) until the store shows ``step`` finished for every run:
    the run store commits its log a moment after a step ends."""
    s = schema.steps
    wanted = list(dict.fromkeys(run_ids))
    deadline = time.monotonic() + timeout
    while wanted:
        seen = 0
        for ids in _chunks(wanted):
            query = select(func.count()).where(
                s.c.step == step, s.c.status == "finished", s.c.run_id.in_(ids)
            )
            seen += int(read(engine, query)[0][0])
        if seen >= len(wanted) or time.monotonic() >= deadline:
            return
        time.sleep(0.05)


def review_answers(engine: Engine, run_id: str, step: str, field: str) -> tuple[Any, Any] | None:
    """``(model's answer, person's answer)`` in ``field`` of the decided review of ``step``."""
    t = schema.reviews
    query = select(t.c.output, t.c.decided_output).where(t.c.review_id == f"{run_id}:{step}")
    rows = read(engine, query)
    if not rows or rows[0].decided_output is None:
        return None
    before, after = json.loads(rows[0].output), json.loads(rows[0].decided_output)
    if not isinstance(before, dict) or not isinstance(after, dict):
        return None
    return before.get(field), after.get(field)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a golden file (JSONL, JSON, CSV or Parquet, by extension)."""
    from relayflow.agents.formats import READERS, format_of

    reader = READERS[format_of(str(path), None)]
    try:
        with path.open("rb") as fh:
            records = list(reader(fh, str(path)))
    except OSError as exc:
        raise ConfigError(
            f"cannot read the golden set {path}: {exc.strerror or exc} — fix evaluate.golden"
        ) from exc
    bad = next((i for i, r in enumerate(records) if not isinstance(r, dict)), None)
    if bad is not None:
        raise InputError(f"{path}: record {bad + 1} of the golden set is not an object")
    return records


def _chunks(ids: Sequence[str] | None) -> Iterator[list[str]]:
    items = list(ids or [])
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
