"""The golden set that decides a promotion: the workflow's ``evaluate.golden`` file, or else a
fixed share of the labelled runs held out by a hash of their id (never trained on)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from relayflow.errors import InputError
from relayflow.learn.data import Fields, LabelledRow, read_records

#: the share of labelled runs held out as the golden set when the workflow names no file
HOLDOUT_SHARE = 0.25


def held_out(key: str, share: float = HOLDOUT_SHARE) -> bool:
    """Whether the item ``key`` belongs to the held-out golden share: the same answer in every
    retrain, so that an item used for judging is never trained on later."""
    bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16)
    return bucket < share * 0x1_0000_0000


@dataclass(frozen=True, slots=True)
class Split:
    """Training rows, golden rows and where the golden rows came from."""

    train: list[LabelledRow]
    golden: list[LabelledRow]
    source: str


def split(
    rows: Sequence[LabelledRow],
    *,
    fields: Fields,
    golden_file: Path | None = None,
    needed: Sequence[str] = (),
) -> Split:
    """Split ``rows`` into training and golden rows.

    With ``golden_file``, each of its records is a golden row (its ``fields.reference`` is the
    answer); a record that lacks one of the ``needed`` inputs takes them from the labelled run
    with the same ``fields.key``, and rows with a golden key are not trained on. Without it, the
    rows whose key hashes into the held-out share are the golden set.
    """
    if golden_file is None:
        golden = [row for row in rows if held_out(row.key)]
        train = [row for row in rows if not held_out(row.key)]
        return Split(train, golden, f"held out: {HOLDOUT_SHARE:.0%} of the labelled runs by id")
    by_key = {row.key: row for row in rows}
    golden = []
    for index, record in enumerate(read_records(golden_file)):
        key = record.get(fields.key)
        answer = record.get(fields.reference)
        if answer is None:
            raise InputError(
                f"{golden_file}: record {index + 1} has no {fields.reference!r}: give every "
                "golden record its expected answer (evaluate.reference)"
            )
        inputs = dict(record)
        if any(name not in inputs for name in needed):
            known = by_key.get(str(key)) if key is not None else None
            if known is None:
                continue
            inputs = {**known.inputs, **record}
        golden.append(
            LabelledRow(
                run_id="",
                key=str(key) if key is not None else f"golden-{index}",
                inputs=inputs,
                prediction=None,
                label=answer,
                source="golden",
                ts=0.0,
            )
        )
    keys = {row.key for row in golden}
    return Split([row for row in rows if row.key not in keys], golden, f"file: {golden_file}")
