"""Labelled history a user points at (``--history FILE``): records of the items a step sees, each
with its label. A record in the shape of the workflow's source (a raw ticket) is first carried
through the steps before the target step (say, the transform that cleans it), by the engine
itself, so that a model learns from exactly what it will read at run time. The label is read
from the record as given (a transform may move it elsewhere).

The steps are run once per file version and workflow version in a process (an online refit
reads the history again each time)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relayflow.errors import InputError
from relayflow.learn.data import Fields, label_of, read_records
from relayflow.schema.workflow import Workflow


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One labelled record, as the target step receives it."""

    key: str
    inputs: Mapping[str, Any]
    label: Any


@dataclass(frozen=True, slots=True)
class History:
    """The rows of a history file and how many of its records could not be used."""

    rows: tuple[HistoryRow, ...]
    unlabelled: int = 0
    failed: int = 0


_cache: dict[tuple[str, int, int, str, str], History] = {}
_lock = threading.Lock()


def read_history(path: Path, workflow: Workflow, step: str, fields: Fields) -> History:
    """The labelled rows of ``path`` for ``step`` of ``workflow`` (blocking: run it in a worker
    thread; it may run the steps before ``step``)."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise InputError(
            f"cannot read the history file {path}: {exc.strerror or exc} — fix --history"
        ) from exc
    key = (str(path), stat.st_mtime_ns, stat.st_size, workflow.version, step)
    with _lock:
        found = _cache.get(key)
    if found is not None:
        return found
    records = read_records(path)
    labelled = [(r, label_of(r, fields)) for r in records]
    usable = [(r, label) for r, label in labelled if label is not None]
    if not usable:
        names = ", ".join(dict.fromkeys([fields.output, fields.reference, "label"]))
        raise InputError(
            f"{path}: no record has a label ({names}): give each record its label in one of "
            "those fields"
        )
    prefix = steps_before(workflow, step)
    outputs: Sequence[Mapping[str, Any] | None]
    if prefix:
        outputs = asyncio.run(_carry(workflow, prefix, [r for r, _ in usable]))
    else:
        outputs = [r for r, _ in usable]
    rows = []
    for index, ((record, label), output) in enumerate(zip(usable, outputs, strict=True)):
        if output is None:
            continue
        found_key = output.get(fields.key, record.get(fields.key))
        key_text = str(found_key) if found_key is not None else f"{path.name}#{index + 1}"
        rows.append(HistoryRow(key_text, output, label))
    history = History(
        tuple(rows), unlabelled=len(records) - len(usable), failed=len(usable) - len(rows)
    )
    with _lock:
        _cache[key] = history
    return history


def steps_before(workflow: Workflow, step: str) -> list[str]:
    """The steps ``step`` depends on, directly or not, in file order."""
    seen: set[str] = set()
    stack = [step]
    while stack:
        for dep in workflow.depends_on.get(stack.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return [a.name for a in workflow.agents if a.name in seen]


async def _carry(
    workflow: Workflow, names: list[str], records: list[dict[str, Any]]
) -> list[Mapping[str, Any] | None]:
    """Each record carried through the steps ``names`` (None where a step failed)."""
    from relayflow.engine.factory import build_runner

    wanted = set(names)
    prefix = dataclasses.replace(
        workflow,
        agents=tuple(a for a in workflow.agents if a.name in wanted),
        depends_on={n: d for n, d in workflow.depends_on.items() if n in wanted},
    )
    async with build_runner(prefix, store=None, use_cache=False) as runner:
        results = [await runner.run(record) for record in records]
    return [r.output if r.status == "succeeded" else None for r in results]
