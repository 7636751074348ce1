"""The record readers: in every format a record that cannot be read is a BadRecord in its place
(file:line, why, the start of its text) and the file goes on; strict readers raise it."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from relayflow.agents.formats import (
    EXCERPT_CHARS,
    READERS,
    RECORD_READERS,
    BadRecord,
    Format,
    excerpt,
    load_json,
)
from relayflow.errors import AgentError


def read(fmt: Format, data: bytes, *, objects: bool = False) -> list[Any]:
    return list(RECORD_READERS[fmt](io.BytesIO(data), "in.x", objects=objects))


def bad(values: list[Any]) -> list[tuple[str, str]]:
    return [(v.location, v.reason) for v in values if isinstance(v, BadRecord)]


def good(values: list[Any]) -> list[Any]:
    return [v for v in values if not isinstance(v, BadRecord)]


def test_jsonl_every_kind_of_bad_line_is_one_bad_record_and_the_file_goes_on() -> None:
    lines = [
        b'{"n": 1}',
        b"{not json",
        b"",
        b'{"n": "caf\xe9"}',  # Latin-1, not UTF-8
        b'{"n": "\\ud800"}',  # json.loads accepts a lone surrogate
        b'{"\\udc00": 1}',  # in a key too
        b"[1, 2]",
        b'{"n": "\\ud83d\\ude00"}',  # a surrogate pair is one real character
        b'{"n": 9}',
    ]
    values = read("jsonl", b"\n".join(lines) + b"\n", objects=True)
    assert good(values) == [{"n": 1}, {"n": "\U0001f600"}, {"n": 9}]
    assert [where for where, _ in bad(values)] == [f"in.x:{n}" for n in (2, 4, 5, 6, 7)]
    reasons = [reason for _, reason in bad(values)]
    assert reasons[0].startswith("not valid JSON: Expecting property name")
    assert reasons[1].startswith("not UTF-8 text (invalid continuation byte at byte 10)")
    assert reasons[2].startswith("n: text with a lone surrogate")
    assert reasons[3].startswith("\ufffd: text with a lone surrogate")  # the key itself
    assert reasons[4].startswith("the item is list, not an object — each item must be")


def test_jsonl_without_objects_keeps_other_values_and_skips_a_byte_order_mark() -> None:
    assert read("jsonl", b'\xef\xbb\xbf{"a": 1}\n7\n') == [{"a": 1}, 7]


def test_csv_bad_rows_are_bad_records_and_the_rows_after_them_are_read() -> None:
    data = b"a,b\n1,2\n1,2,3\n\xff,4\n5,6\n"
    values = read("csv", data)
    assert good(values) == [{"a": "1", "b": "2"}, {"a": "5", "b": "6"}]
    assert bad(values) == [
        (
            "in.x:3",
            "the row has more fields than the header (2) — quote fields that contain commas",
        ),
        ("in.x:4", "not UTF-8 text (invalid start byte at byte 0) — save the file as UTF-8"),
    ]


def test_csv_with_a_header_that_is_not_utf8_is_one_bad_record() -> None:
    assert bad(read("csv", b"\xff,b\n1,2\n")) == [
        (
            "in.x:1",
            "not UTF-8 text (invalid start byte at byte 0) — save the file as UTF-8 "
            "(the header row)",
        )
    ]


def test_json_elements_that_are_not_objects_or_hold_lone_surrogates_are_bad() -> None:
    values = read("json", b'[{"a": 1}, 3, {"b": "\\udfff"}, {"c": 2}]', objects=True)
    assert good(values) == [{"a": 1}, {"c": 2}]
    assert [where for where, _ in bad(values)] == ["in.x#2", "in.x#3"]


def test_a_json_file_that_does_not_parse_is_one_bad_record_at_its_line() -> None:
    [record] = read("json", b'[{"a": 1},\n  {"b": }\n]')
    assert isinstance(record, BadRecord)
    assert (record.location, record.excerpt) == ("in.x:2", '{"b": }')
    assert record.reason == "not valid JSON: Expecting value — fix the JSON syntax"


def test_text_that_is_not_utf8_and_an_unreadable_parquet_file_are_bad_records() -> None:
    assert bad(read("text", b"caf\xe9")) == [
        ("in.x", "not UTF-8 text (unexpected end of data at byte 3) — save the file as UTF-8")
    ]
    pytest.importorskip("pyarrow")
    [(where, reason)] = bad(read("parquet", b"PAR1 not really"))
    assert where == "in.x" and reason.startswith("not a readable parquet file: ")


def test_an_excerpt_is_short_and_always_storable() -> None:
    long = excerpt("x" * 10_000)
    assert len(long) == EXCERPT_CHARS and long.endswith("…")
    assert excerpt("a\ud800b") == "a\\ud800b"
    assert excerpt(b"caf\xe9") == "caf\\xe9"
    json.dumps(excerpt("\udfff"), ensure_ascii=False).encode("utf-8")  # raises if not text


@pytest.mark.parametrize(
    ("fmt", "data", "message"),
    [
        ("jsonl", b'{"a": 1}\n{"a": \n', r"^in\.x:2: not valid JSON"),
        ("jsonl", b'{"a": "\\ud800"}\n', r"^in\.x:1: a: text with a lone surrogate"),
        ("csv", b"a,b\n1,2,3\n", r"^in\.x:2: the row has more fields"),
        ("text", b"\xff", r"^in\.x: not UTF-8 text"),
    ],
)
def test_strict_readers_raise_the_first_bad_record(fmt: Format, data: bytes, message: str) -> None:
    with pytest.raises(AgentError, match=message):
        list(READERS[fmt](io.BytesIO(data), "in.x"))


def test_a_looked_up_json_file_with_a_lone_surrogate_is_an_error() -> None:
    with pytest.raises(AgentError, match=r"^in\.x: a\[0\]: text with a lone surrogate"):
        list(load_json(io.BytesIO(b'{"a": ["\\ud800"]}'), "in.x"))
