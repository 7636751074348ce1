"""Where a batch's items come from: a JSONL/JSON/CSV/Parquet file read record by record, or the
workflow's own source agent; either capped by ``--limit``. A record that cannot be read is a
BadRecord in its place, which the batch records and skips."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relayflow.cli.output import UserError

if TYPE_CHECKING:
    from relayflow.engine.batch import Item
    from relayflow.engine.runner import Runner
    from relayflow.schema.workflow import Workflow

#: local JSONL files up to this size are counted first, so the progress bar knows its total
COUNT_LIMIT_BYTES = 64 * 1024 * 1024


def inputs_location(path: str) -> str:
    """Check that ``path`` can be read as items; return it absolute (URLs stay as they are)."""
    if "://" in path and not path.startswith("file://"):
        _check_format(path)
        return path
    local = Path(path.removeprefix("file://")).expanduser()
    if not local.is_file():
        raise UserError(f"inputs file not found: {path} — check the path given to --inputs")
    _check_format(local.name)
    return str(local.resolve())


def _check_format(path: str) -> None:
    from relayflow.agents.formats import format_of
    from relayflow.errors import AgentError

    try:
        format_of(path, None)
    except AgentError:
        raise UserError(
            f"cannot tell the format of {path} from its extension: name it .jsonl, .json, "
            ".csv or .parquet (optionally compressed, e.g. .jsonl.gz)"
        ) from None


def file_items(location: str, limit: int | None = None) -> Iterator[Item]:
    """Stream the records of ``location`` (never the whole file at once, except JSON, which
    has to be parsed whole), at most ``limit`` (bad ones count: they hold their place). Each
    must be a JSON object; one that is not, or cannot be decoded, is a BadRecord, and so is the
    rest of a file that breaks off while being read (a damaged archive)."""
    from relayflow.agents.formats import RECORD_READERS, BadRecord, compression_of, format_of

    if limit is not None and limit <= 0:
        return
    fmt = format_of(location, None)
    reader = RECORD_READERS[fmt]
    count, entered = 0, False
    try:
        with _open(location, compression_of(location)) as raw:
            entered = True
            for record in reader(raw, location, objects=True):
                yield record
                count += 1
                if limit is not None and count >= limit:
                    return
    except (OSError, EOFError, ValueError) as exc:  # zlib, gzip and lzma errors are among these
        if not entered:
            why = getattr(exc, "strerror", None) or exc
            raise UserError(f"cannot read the inputs {location}: {why}") from None
        reason = (
            f"cannot read on from item {count + 1}: {type(exc).__name__}: {exc} — the file is "
            f"damaged or not {fmt}"
        )
        yield BadRecord(f"{location}#{count + 1}", reason)


def _open(location: str, compression: str | None) -> Any:
    if compression is None and "://" not in location:
        return open(location, "rb")  # closed by the caller's ``with``
    import fsspec

    return fsspec.open(location, "rb", compression=compression)


def count_items(location: str, limit: int | None = None) -> int | None:
    """How many items a local JSONL file holds (non-blank lines), or None when that is not
    cheap to know (other formats, remote or large files)."""
    if "://" in location or not location.endswith((".jsonl", ".ndjson")):
        return limit
    try:
        if os.path.getsize(location) > COUNT_LIMIT_BYTES:
            return limit
        with open(location, "rb") as handle:
            total = sum(1 for line in handle if line.strip())
    except OSError:
        return limit
    return total if limit is None else min(total, limit)


def source_items(runner: Runner, limit: int | None = None) -> AsyncIterator[Item]:
    """The records of the workflow's source agent, at most ``limit`` of them."""
    from relayflow.engine.batch import source_agent, source_records

    return source_records(source_agent(runner), limit)


def split_keys(workflow: Workflow, split: str) -> frozenset[str]:
    """The keys of the golden records in ``split`` (``--split holdout``): the golden file's
    records carry ``split: dev|holdout|…``; an item is run when its ``evaluate.key`` is one."""
    from relayflow.learn.data import read_records

    evaluate = workflow.spec.evaluate
    if evaluate is None or evaluate.golden is None:
        raise UserError(
            f"{workflow.file}: --split {split} needs a golden set whose records carry a `split` "
            "field: set evaluate.golden, or run without --split"
        )
    path = Path(evaluate.golden).expanduser()
    path = path if path.is_absolute() else workflow.base_dir / path
    records = read_records(path)
    splits = sorted({str(r["split"]) for r in records if r.get("split") is not None})
    if split not in splits:
        known = ", ".join(splits) or "none: no record has a `split` field"
        raise UserError(f"{path}: no golden record is in split {split!r}; its splits: {known}")
    return frozenset(
        str(r[evaluate.key])
        for r in records
        if r.get("split") == split and r.get(evaluate.key) is not None
    )
