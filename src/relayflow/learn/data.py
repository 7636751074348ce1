"""Labelled data for retraining, read from the run store: each run's output of the target step
(its inputs and the model's answer) with a label — a reviewer's decision or a label added by
hand (the ``feedback`` table), else the reference the item carried (``evaluate.reference``)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relayflow.errors import ConfigError, InputError
from relayflow.eval.scoring import accuracy
from relayflow.store import outcomes

if TYPE_CHECKING:
    from relayflow.store.database import Engine


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
    found = outcomes.finished_outputs(
        engine, workflow=workflow, step=step, runs=runs, since=since, limit=limit
    )
    labels = _feedback(engine, workflow, [row.run_id for row in found], fields)
    rows = []
    for run_id, _step, output, ended, item_key, _versions in found:
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
    labels: dict[str, tuple[Any, str]] = {}
    for found in outcomes.labels_of_runs(engine, workflow, run_ids):
        value = found.label
        label = label_of(value, fields) if isinstance(value, dict) else value
        if label is not None and found.run_id is not None:
            labels[found.run_id] = (label, found.source)
    return labels


def wait_for_runs(engine: Engine, step: str, run_ids: Sequence[str], timeout: float = 5.0) -> None:
    """Wait (up to ``timeout`` seconds) until the store shows ``step`` finished for every run:
    the run store commits its log a moment after a step ends."""
    wanted = list(dict.fromkeys(run_ids))
    deadline = time.monotonic() + timeout
    while wanted:
        seen = outcomes.finished_count(engine, step, wanted)
        if seen >= len(wanted) or time.monotonic() >= deadline:
            return
        time.sleep(0.05)


def review_answers(engine: Engine, run_id: str, step: str, field: str) -> tuple[Any, Any] | None:
    """``(model's answer, person's answer)`` in ``field`` of the decided review of ``step``."""
    found = outcomes.decided_review(engine, run_id, step)
    if found is None:
        return None
    before, after = found
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
