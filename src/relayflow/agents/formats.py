"""Record readers for the retrieval agent: one streaming generator per file format."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from typing import IO, Any, Literal

from relayflow.errors import AgentError

Format = Literal["jsonl", "json", "csv", "parquet", "text"]

FORMATS: tuple[Format, ...] = ("jsonl", "json", "csv", "parquet", "text")

_EXTENSIONS: dict[str, Format] = {
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "json": "json",
    "csv": "csv",
    "parquet": "parquet",
    "pq": "parquet",
    "txt": "text",
    "md": "text",
}

#: compressed files are read through fsspec's codec for their suffix
_COMPRESSIONS = {"gz": "gzip", "bz2": "bz2", "xz": "xz", "zst": "zstd", "lz4": "lz4"}

#: how many parquet rows are decoded at once
PARQUET_BATCH = 1024

Reader = Callable[[IO[bytes], str], Iterator[Any]]


def _name(path: str) -> str:
    """The lower-case file name of a path or URL, without a URL's query or fragment."""
    if "://" in path:
        path = path.split("?", 1)[0].split("#", 1)[0]
    return path.rsplit("/", 1)[-1].lower()


def _suffix(name: str) -> str:
    return name.rsplit(".", 1)[-1] if "." in name else ""


def compression_of(path: str) -> str | None:
    """fsspec's name of the codec the suffix of ``path`` names (``gzip`` for ``.gz``), or None."""
    return _COMPRESSIONS.get(_suffix(_name(path)))


def format_of(path: str, configured: Format | None) -> Format:
    """The configured format, or the one the extension of ``path`` names (``.jsonl.gz`` too)."""
    if configured is not None:
        return configured
    name = _name(path)
    if _suffix(name) in _COMPRESSIONS:
        name = name.rsplit(".", 1)[0]
    fmt = _EXTENSIONS.get(_suffix(name))
    if fmt is None:
        raise AgentError(
            f"cannot tell the format of {path} from its extension; "
            f"set format: to one of {', '.join(FORMATS)}"
        )
    return fmt


def _text(raw: IO[bytes]) -> io.TextIOWrapper:
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def read_jsonl(raw: IO[bytes], path: str) -> Iterator[Any]:
    """One JSON value per non-blank line, read line by line."""
    with _text(raw) as text:
        for lineno, line in enumerate(text, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise AgentError(
                    f"{path}:{lineno}: not valid JSON: {exc.msg} — write one JSON value per line"
                ) from exc


def read_json(raw: IO[bytes], path: str) -> Iterator[Any]:
    """The elements of a top-level list, or the one top-level value (the file is parsed whole)."""
    for value in load_json(raw, path):
        yield from value if isinstance(value, list) else (value,)


def load_json(raw: IO[bytes], path: str) -> Iterator[Any]:
    """The one JSON value of the file, as it is (a list stays a list)."""
    try:
        value = json.load(raw)
    except json.JSONDecodeError as exc:
        raise AgentError(
            f"{path}:{exc.lineno}: not valid JSON: {exc.msg} — fix the JSON syntax"
        ) from exc
    yield value


def read_csv(raw: IO[bytes], path: str) -> Iterator[Any]:
    """One dict per row, keyed by the header row; values stay strings."""
    with _text(raw) as text:
        reader = csv.DictReader(text, restkey="\0extra")
        try:
            for row in reader:
                if "\0extra" in row:
                    raise AgentError(
                        f"{path}:{reader.line_num}: the row has more fields than the header "
                        f"({len(reader.fieldnames or [])}) — quote fields that contain commas"
                    )
                yield row
        except csv.Error as exc:
            raise AgentError(f"{path}:{reader.line_num}: bad CSV: {exc} — fix the file") from exc


def read_parquet(raw: IO[bytes], path: str) -> Iterator[Any]:
    """One dict per row, decoded batch by batch."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise AgentError(
            f"reading {path} needs pyarrow — pip install 'relayflow[parquet]'"
        ) from exc
    try:
        parquet = pq.ParquetFile(raw)
    except Exception as exc:  # pyarrow raises ArrowInvalid (a ValueError) and OSError subtypes
        raise AgentError(f"{path}: not a readable parquet file: {exc} — check format:") from exc
    with parquet:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH):
            yield from batch.to_pylist()


def read_text(raw: IO[bytes], path: str) -> Iterator[Any]:
    """The whole file as one record: ``{"path": …, "text": …}``."""
    yield {"path": path, "text": raw.read().decode("utf-8")}


READERS: dict[Format, Reader] = {
    "jsonl": read_jsonl,
    "json": read_json,
    "csv": read_csv,
    "parquet": read_parquet,
    "text": read_text,
}
