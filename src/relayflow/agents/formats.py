"""Record readers for the retrieval agent, batch inputs and golden sets: one streaming generator
per file format, lenient (a bad record in the place of each one that cannot be read) or strict."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from typing import IO, Any, Literal, NamedTuple, Protocol

from relayflow.errors import AgentError
from relayflow.text import surrogate_message, surrogate_path

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


class BadRecord(NamedTuple):
    """A record of a source that cannot become a run (not valid JSON, not UTF-8, not an object,
    a lone surrogate …): where it is, why, and the start of its text. Lenient readers yield it
    in the record's place, so a batch records it and goes on; strict readers raise it."""

    location: str  # ``file:line``, or ``file#n`` (the n-th record) where lines mean nothing
    reason: str  # what is wrong — how to fix it
    excerpt: str = ""

    @property
    def message(self) -> str:
        return f"{self.location}: {self.reason}"


#: how much of a bad record's text is kept with it
EXCERPT_CHARS = 200

_EXTRA = "\0extra"
_NOT_UTF8 = "not UTF-8 text ({reason} at byte {start}) — save the file as UTF-8"


def excerpt(raw: str | bytes) -> str:
    """The start of a bad record's text, always storable: invalid bytes and lone surrogates
    are shown as escapes, and it is cut to EXCERPT_CHARS."""
    if isinstance(raw, bytes):
        text = raw[: EXCERPT_CHARS * 4].decode("utf-8", "backslashreplace")
    else:
        text = raw[: EXCERPT_CHARS * 2].encode("utf-8", "backslashreplace").decode("utf-8")
    text = text.strip()
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _not_object(value: Any, fix: str) -> str:
    return f"the item is {type(value).__name__}, not an object — {fix}"


class RecordReader(Protocol):
    """Reads one file: its values in order, a BadRecord in the place of each bad one.
    ``objects`` makes a value that is not a JSON object a BadRecord too."""

    def __call__(
        self, raw: IO[bytes], path: str, *, objects: bool = False
    ) -> Iterator[Any | BadRecord]: ...


def lenient_jsonl(raw: IO[bytes], path: str, *, objects: bool = False) -> Iterator[Any]:
    """One JSON value per non-blank line, read line by line; each line decoded on its own, so
    one bad line is one bad record."""
    for lineno, line in enumerate(raw, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield BadRecord(
                where, _NOT_UTF8.format(reason=exc.reason, start=exc.start), excerpt(line)
            )
            continue
        if lineno == 1:
            text = text.removeprefix("\ufeff")  # a byte order mark some editors write
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            reason = f"not valid JSON: {exc.msg} — write one JSON value per line"
            yield BadRecord(where, reason, excerpt(text))
            continue
        except RecursionError:
            yield BadRecord(where, "JSON nested too deeply — flatten the record", excerpt(text))
            continue
        # json.loads accepts "\ud800"; such a string cannot be stored or shown. Only a line
        # with an escape can hold one: the others are not walked.
        found = surrogate_path(value) if "\\u" in text else None
        if found is not None:
            yield BadRecord(where, surrogate_message(found), excerpt(text))
        elif objects and type(value) is not dict:
            fix = "each item must be a JSON object (one per line in JSONL)"
            yield BadRecord(where, _not_object(value, fix), excerpt(text))
        else:
            yield value


def lenient_json(raw: IO[bytes], path: str, *, objects: bool = False) -> Iterator[Any]:
    """The elements of a top-level list, or the one top-level value (the file is parsed whole:
    a syntax error makes the whole file one bad record)."""
    data = raw.read()
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        line = data.splitlines()[exc.lineno - 1] if data.splitlines() else data
        yield BadRecord(
            f"{path}:{exc.lineno}",
            f"not valid JSON: {exc.msg} — fix the JSON syntax",
            excerpt(line),
        )
        return
    except UnicodeDecodeError as exc:
        yield BadRecord(path, _NOT_UTF8.format(reason=exc.reason, start=exc.start), excerpt(data))
        return
    except RecursionError:
        yield BadRecord(path, "JSON nested too deeply — flatten the records", excerpt(data))
        return
    # escapes, or the UTF-8 form of a surrogate (json.loads decodes bytes with surrogatepass)
    check = b"\\u" in data or b"\xed" in data
    for number, item in enumerate(value if isinstance(value, list) else (value,), 1):
        found = surrogate_path(item) if check else None
        if found is not None:
            yield BadRecord(f"{path}#{number}", surrogate_message(found), excerpt(json.dumps(item)))
        elif objects and type(item) is not dict:
            fix = "each item must be a JSON object (a list of objects in JSON)"
            yield BadRecord(f"{path}#{number}", _not_object(item, fix), excerpt(json.dumps(item)))
        else:
            yield item


def load_json(raw: IO[bytes], path: str) -> Iterator[Any]:
    """The one JSON value of the file, as it is (a list stays a list)."""
    data = raw.read()
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        raise AgentError(
            f"{path}:{exc.lineno}: not valid JSON: {exc.msg} — fix the JSON syntax"
        ) from exc
    found = surrogate_path(value) if b"\\u" in data or b"\xed" in data else None
    if found is not None:
        raise AgentError(f"{path}: {surrogate_message(found)}")
    yield value


def lenient_csv(raw: IO[bytes], path: str, *, objects: bool = False) -> Iterator[Any]:
    """One dict per row, keyed by the header row; values stay strings. Lines are decoded one by
    one, so a line that is not UTF-8 spoils only its row."""
    undecodable: list[tuple[int, UnicodeDecodeError, bytes]] = []
    last: list[str] = [""]

    def lines() -> Iterator[str]:
        for lineno, line in enumerate(raw, 1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                undecodable.append((lineno, exc, line))
                text = line.decode("utf-8", "replace")
            last[0] = text
            yield text

    reader = csv.DictReader(lines(), restkey=_EXTRA)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        yield BadRecord(f"{path}:{reader.line_num}", f"bad CSV header: {exc} — fix the file")
        return
    if undecodable or header is None:
        if undecodable:
            lineno, error, line = undecodable[0]
            reason = _NOT_UTF8.format(reason=error.reason, start=error.start) + " (the header row)"
            yield BadRecord(f"{path}:{lineno}", reason, excerpt(line))
        return
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield BadRecord(
                f"{path}:{reader.line_num}", f"bad CSV: {exc} — fix the file", excerpt(last[0])
            )
            continue
        if undecodable:
            lineno, error, line = undecodable[0]
            undecodable.clear()
            reason = _NOT_UTF8.format(reason=error.reason, start=error.start)
            yield BadRecord(f"{path}:{lineno}", reason, excerpt(line))
        elif _EXTRA in row:
            yield BadRecord(
                f"{path}:{reader.line_num}",
                f"the row has more fields than the header ({len(header)}) — quote fields "
                "that contain commas",
                excerpt(last[0]),
            )
        else:
            yield row


def lenient_parquet(raw: IO[bytes], path: str, *, objects: bool = False) -> Iterator[Any]:
    """One dict per row, decoded batch by batch; a row that cannot be decoded is a bad record,
    a file that cannot be read from some row on is one bad record for the rest."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise AgentError(
            f"reading {path} needs pyarrow — pip install 'relayflow[parquet]'"
        ) from exc
    try:
        parquet = pq.ParquetFile(raw)
    except Exception as exc:  # pyarrow raises ArrowInvalid (a ValueError) and OSError subtypes
        yield BadRecord(path, f"not a readable parquet file: {exc} — check format:")
        return
    with parquet:
        row = 0
        try:
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH):
                try:
                    yield from batch.to_pylist()
                except Exception:  # one undecodable value (a string that is not UTF-8 …)
                    for index in range(batch.num_rows):
                        try:
                            [value] = batch.slice(index, 1).to_pylist()
                        except Exception as exc:
                            yield BadRecord(
                                f"{path}#{row + index + 1}",
                                f"cannot decode the row: {exc} — fix the file",
                            )
                        else:
                            yield value
                row += batch.num_rows
        except Exception as exc:  # a damaged page or row group: the rest cannot be read
            yield BadRecord(
                f"{path}#{row + 1}",
                f"cannot read the rows from {row + 1} on: {exc} — the file is damaged",
            )


def lenient_text(raw: IO[bytes], path: str, *, objects: bool = False) -> Iterator[Any]:
    """The whole file as one record: ``{"path": …, "text": …}``."""
    data = raw.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield BadRecord(path, _NOT_UTF8.format(reason=exc.reason, start=exc.start), excerpt(data))
        return
    yield {"path": path, "text": text}


#: the batch source's readers: a bad record is yielded in its place, and the file goes on
RECORD_READERS: dict[Format, RecordReader] = {
    "jsonl": lenient_jsonl,
    "json": lenient_json,
    "csv": lenient_csv,
    "parquet": lenient_parquet,
    "text": lenient_text,
}


def strict(reader: RecordReader) -> Reader:
    """``reader`` raising AgentError at the first bad record (golden sets, lookups: a bad
    record there is a bad file)."""

    def read(raw: IO[bytes], path: str) -> Iterator[Any]:
        for value in reader(raw, path):
            if type(value) is BadRecord:
                raise AgentError(value.message)
            yield value

    read.__doc__ = reader.__doc__
    return read


read_jsonl = strict(lenient_jsonl)
read_json = strict(lenient_json)
read_csv = strict(lenient_csv)
read_parquet = strict(lenient_parquet)
read_text = strict(lenient_text)

READERS: dict[Format, Reader] = {
    "jsonl": read_jsonl,
    "json": read_json,
    "csv": read_csv,
    "parquet": read_parquet,
    "text": read_text,
}
