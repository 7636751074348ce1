"""Which recorded runs a diagnosis reads: one batch, the latest N runs, or by default the newer
of the last bench (its measured passes, from ``bench.json``; warm-up runs left out) and the
latest batch of the workflow in the run store."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relayflow.errors import InputError, NotFound

if TYPE_CHECKING:
    from relayflow.store.protocol import RunStore
    from relayflow.store.records import RunRecord


@dataclass(frozen=True, slots=True)
class BenchRecord:
    """What ``bench.json`` says of one workflow's last bench: its store and measured batches."""

    store: str
    batch_ids: tuple[str, ...]
    created: float
    file: Path


@dataclass(frozen=True, slots=True)
class Candidate:
    """A place runs may be read from: a store, and the batches there (None: none chosen)."""

    store: str
    batch_ids: tuple[str, ...] | None
    created: float
    #: the source in words, for the report
    label: str


@dataclass(frozen=True, slots=True)
class Selection:
    store: str
    runs: tuple[RunRecord, ...]
    label: str


def read_bench(path: Path, workflow: str) -> BenchRecord | None:
    """The last bench of ``workflow`` that ``path`` (a bench.json) records, if any."""
    if not path.is_file():
        return None
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("store"), str):
        return None
    entry = next(
        (
            w
            for w in data.get("workflows") or []
            if isinstance(w, dict) and w.get("name") == workflow
        ),
        None,
    )
    if entry is None:
        return None
    batches = tuple(
        str(p["batch_id"])
        for p in entry.get("passes") or []
        if isinstance(p, dict) and p.get("batch_id")
    )
    if not batches:
        return None
    try:
        created = datetime.fromisoformat(str(data.get("created"))).timestamp()
    except ValueError:
        created = path.stat().st_mtime
    return BenchRecord(data["store"], batches, created, path)


def same_store(a: str, b: str) -> bool:
    """Whether two store locations (paths or URLs) name the same store."""

    def norm(location: str) -> str:
        if location.startswith("sqlite:///"):
            location = location[len("sqlite:///") :]
        if "://" in location:
            return location
        return str(Path(location).expanduser().resolve())

    return norm(a) == norm(b)


def store_exists(location: str) -> bool:
    """A database URL is taken to exist; a SQLite path must be a file."""
    if location.startswith("sqlite:///"):
        location = location[len("sqlite:///") :]
    return "://" in location or Path(location).expanduser().is_file()


def bench_candidate(bench: BenchRecord | None, store_given: str | None) -> Candidate | None:
    """The last bench as a candidate: only in its own store, or in the store given."""
    if bench is None or not store_exists(bench.store):
        return None
    if store_given is not None and not same_store(store_given, bench.store):
        return None
    passes = len(bench.batch_ids)
    label = f"the last bench ({passes} pass{'es' if passes != 1 else ''}, {bench.file})"
    return Candidate(bench.store, bench.batch_ids, bench.created, label)


def batch_candidate(store: RunStore, location: str, workflow: str) -> Candidate | None:
    """The latest batch of ``workflow`` in ``store`` as a candidate."""
    found = store.list_batches(workflow=workflow, limit=1)
    if not found:
        return None
    batch = found[0]
    return Candidate(location, (batch.batch_id,), batch.created, f"batch {batch.batch_id}")


def runs_of(
    store: RunStore, workflow: str, *, batch_ids: tuple[str, ...] | None, last: int | None
) -> list[RunRecord]:
    """The workflow's runs of ``batch_ids`` (or all of them), the latest ``last`` if given,
    oldest first."""
    if batch_ids is None:
        runs = store.list_runs(workflow=workflow, limit=last)
    else:
        runs = []
        for batch_id in batch_ids:
            runs.extend(store.list_runs(workflow=workflow, batch_id=batch_id, limit=None))
        runs.sort(key=lambda r: r.started, reverse=True)
        if last is not None:
            runs = runs[:last]
    return sorted(runs, key=lambda r: r.started)


def no_runs(workflow: str, file: str, where: str) -> NotFound:
    return NotFound(
        f"no runs of workflow {workflow!r} {where}: run `relayflow bench {file}` or "
        f"`relayflow run {file} --inputs ITEMS` first (or point --store at the store they wrote)"
    )


def check_last(last: int | None) -> None:
    if last is not None and last < 1:
        raise InputError(f"--runs {last}: give a number of runs of 1 or more")


def choose(
    workflow: str,
    file: str,
    *,
    store_given: str | None,
    default_store: str,
    bench_json: Path,
    batch: str | None = None,
    last: int | None = None,
) -> Candidate:
    """Where the diagnosed runs are: the store and batches (None: the latest ``last`` runs of
    the workflow there, whatever their batch).

    ``--batch`` is looked for in the store given, else the default store and the last bench's.
    Otherwise the newer of the last bench and the latest batch of the workflow wins, and with
    ``--runs`` its store's latest runs are read."""
    check_last(last)
    bench = read_bench(bench_json, workflow)
    stores = [store_given] if store_given is not None else [default_store]
    if store_given is None and bench is not None and not same_store(bench.store, default_store):
        stores.append(bench.store)
    stores = [s for s in stores if store_exists(s)]
    if batch is not None:
        for location in stores:
            found = _with_store(location, lambda s: s.get_batch(batch))
            if found is not None:
                return Candidate(location, (batch,), found.created, f"batch {batch}")
        where = f"in {' or '.join(stores)}" if stores else "(no run store found)"
        raise NotFound(f"no batch {batch!r} {where}: see `relayflow batches list`")
    candidates = []
    from_bench = bench_candidate(bench, store_given)
    if from_bench is not None:
        candidates.append(from_bench)
    for location in stores:
        if from_bench is not None and same_store(location, from_bench.store):
            continue  # the bench's own store: its batches are the bench's
        latest = _with_store(location, lambda s, at=location: batch_candidate(s, at, workflow))
        if latest is not None:
            candidates.append(latest)
    if not candidates:
        where = f"in {' or '.join(stores)}" if stores else "(no run store found)"
        raise no_runs(workflow, file, where)
    newest = max(candidates, key=lambda c: c.created)
    if last is not None:
        return Candidate(newest.store, None, newest.created, f"the last {last} runs")
    return newest


def _with_store(location: str, read: Any) -> Any:
    from relayflow.store.sql_store import SqlStore

    store = SqlStore(location)
    try:
        return read(store)
    finally:
        store.close()
