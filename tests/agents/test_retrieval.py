"""The retrieval agent: every format, folders and globs, limits, streaming, lookups, S3 and HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from relayflow.agents.base import BuildContext
from relayflow.agents.formats import BadRecord, format_of
from relayflow.agents.retrieval import RetrievalAgent, RetrievalConfig, item_key
from relayflow.core.handoff import Handoff
from relayflow.core.result import StepInfo
from relayflow.errors import AgentError

DATA = Path(__file__).resolve().parent.parent / "resources" / "retrieval"
STEP = StepInfo(run_id="r1", step="lookup", attempt=1)


def agent(ctx: BuildContext, **settings: Any) -> RetrievalAgent:
    config = RetrievalConfig(name="ingest", type="retrieval", **settings)
    return RetrievalAgent(config, ctx)


def collect(a: RetrievalAgent) -> list[Any]:
    """The source's records, bad ones (BadRecord) included."""

    async def go() -> list[Any]:
        await a.prepare()
        return [r async for r in a.records()]

    return asyncio.run(go())


def collect_keyed(a: RetrievalAgent) -> list[tuple[str, Any]]:
    async def go() -> list[tuple[str, Any]]:
        return [kr async for kr in a.keyed_records()]

    return asyncio.run(go())


def lookup(a: RetrievalAgent, data: dict[str, Any]) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        await a.prepare()
        return dict((await a.run(Handoff(data=data, run_id="r1"), STEP)).data)

    return asyncio.run(go())


# -- formats ------------------------------------------------------------------------------


def test_jsonl_skips_blank_lines_and_keeps_order(resources_ctx: BuildContext) -> None:
    records = collect(agent(resources_ctx, source="tickets.jsonl"))
    assert [r["id"] for r in records] == ["t1", "t2", "t3"]
    assert records[0] == {"id": "t1", "text": "My card was charged twice", "label": "billing"}


def test_json_list_gives_one_record_per_element_and_wraps_scalars(
    resources_ctx: BuildContext,
) -> None:
    records = collect(agent(resources_ctx, source="tickets.json"))
    assert records == [
        {"id": "j1", "text": "Refund please"},
        {"id": "j2", "text": "Reset my password"},
        {"value": 7},
    ]


def test_json_object_is_one_record(resources_ctx: BuildContext) -> None:
    assert collect(agent(resources_ctx, source="customer.json")) == [
        {"id": "C1", "tier": "gold", "since": 2019}
    ]


def test_csv_rows_are_dicts_of_strings(resources_ctx: BuildContext) -> None:
    records = collect(agent(resources_ctx, source="tickets.csv"))
    assert records == [
        {"id": "c1", "text": "Charged twice, please refund", "priority": "high"},
        {"id": "c2", "text": "App crashes on start", "priority": "low"},
    ]


def test_parquet_rows_keep_their_types(resources_ctx: BuildContext) -> None:
    records = collect(agent(resources_ctx, source="tickets.parquet"))
    assert records == [
        {"id": "p1", "amount": 12.5, "fraud": False},
        {"id": "p2", "amount": 99.0, "fraud": True},
        {"id": "p3", "amount": 3.25, "fraud": False},
    ]


def test_text_files_are_one_record_each(resources_ctx: BuildContext) -> None:
    (record,) = collect(agent(resources_ctx, source="notes.txt"))
    assert record == {
        "path": str(DATA / "notes.txt"),
        "text": "Café opening hours\nMonday to Friday\n",
    }
    (md,) = collect(agent(resources_ctx, source="faq.md"))
    assert md["text"].startswith("# FAQ")


def test_configured_format_wins_over_the_extension(tmp_path: Path, ctx: BuildContext) -> None:
    (tmp_path / "rows.log").write_text('{"a": 1}\n{"a": 2}\n')
    assert collect(agent(ctx, source="rows.log", format="jsonl")) == [{"a": 1}, {"a": 2}]
    as_text = collect(agent(ctx, source="rows.log", format="text"))
    assert as_text == [{"path": str(tmp_path / "rows.log"), "text": '{"a": 1}\n{"a": 2}\n'}]


def test_gzipped_jsonl_is_read_through_its_codec(tmp_path: Path, ctx: BuildContext) -> None:
    import gzip

    with gzip.open(tmp_path / "rows.jsonl.gz", "wt") as f:
        f.write('{"a": 1}\n{"a": 2}\n')
    assert collect(agent(ctx, source="rows.jsonl.gz")) == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("https://h/x/data.JSONL?sig=a.b", "jsonl"),
        ("s3://b/rows.ndjson.gz", "jsonl"),
        ("/d/notes.md", "text"),
        ("/d/t.pq", "parquet"),
    ],
)
def test_format_from_the_extension(path: str, fmt: str) -> None:
    assert format_of(path, None) == fmt
    assert format_of(path, "csv") == "csv"


def test_unknown_extension_asks_for_format(tmp_path: Path, ctx: BuildContext) -> None:
    (tmp_path / "rows.log").write_text("x\n")
    with pytest.raises(AgentError, match=r"rows\.log.*set format:"):
        collect(agent(ctx, source="rows.log"))


# -- folders, globs, URLs, limits, keys ---------------------------------------------------


def test_folder_reads_every_file_sorted_and_skips_hidden(resources_ctx: BuildContext) -> None:
    keyed = collect_keyed(agent(resources_ctx, source="folder"))
    assert [r["id"] for _, r in keyed] == ["a1", "a2", "b1", "c1"]
    assert [k for k, _ in keyed] == [
        f"{DATA}/folder/a.jsonl#0",
        f"{DATA}/folder/a.jsonl#1",
        f"{DATA}/folder/b.csv#0",
        f"{DATA}/folder/sub/c.jsonl#0",
    ]


def test_glob_in_source_and_glob_setting(resources_ctx: BuildContext) -> None:
    assert [r["id"] for r in collect(agent(resources_ctx, source="folder/*.jsonl"))] == [
        "a1",
        "a2",
    ]
    in_folder = collect(agent(resources_ctx, source="folder", glob="**/*.jsonl"))
    assert sorted(r["id"] for r in in_folder) == ["a1", "a2", "c1"]


def test_file_url_and_absolute_path(ctx: BuildContext) -> None:
    url = (DATA / "tickets.jsonl").as_uri()
    assert [r["id"] for r in collect(agent(ctx, source=url))] == ["t1", "t2", "t3"]
    assert len(collect(agent(ctx, source=str(DATA / "tickets.csv")))) == 2


def test_limit_caps_records_across_files(resources_ctx: BuildContext) -> None:
    assert [r["id"] for r in collect(agent(resources_ctx, source="folder", limit=3))] == [
        "a1",
        "a2",
        "b1",
    ]
    assert len(collect(agent(resources_ctx, source="tickets.jsonl", limit=1))) == 1


def test_item_key_names_file_and_position() -> None:
    assert item_key({"id": 1}, "s3://b/x.jsonl", 4) == "s3://b/x.jsonl#4"


def test_versions_name_the_source(resources_ctx: BuildContext) -> None:
    assert agent(resources_ctx, source="folder").versions() == {"source": "folder"}


def test_streaming_keeps_memory_small(tmp_path: Path, ctx: BuildContext) -> None:
    big = tmp_path / "big.jsonl"
    with big.open("w") as f:
        for i in range(100_000):
            f.write(json.dumps({"id": i, "text": f"ticket number {i} " + "x" * 100}) + "\n")
    assert big.stat().st_size > 10_000_000  # the file is bigger than the memory bound below

    async def count() -> tuple[int, int]:
        a = agent(ctx, source="big.jsonl")
        n = last = 0
        async for record in a.records():
            assert isinstance(record, dict)
            n += 1
            last = record["id"]
        return n, last

    tracemalloc.start()
    try:
        n, last = asyncio.run(count())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (n, last) == (100_000, 99_999)
    assert peak < 10_000_000


def _is_open(path: Path) -> bool:
    fds = Path("/proc/self/fd")
    return any(str(path) == os.path.realpath(fd) for fd in fds.iterdir())


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to list open files")
def test_stopping_early_closes_the_file(tmp_path: Path, ctx: BuildContext) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(f'{{"i": {i}}}\n' for i in range(1000)))

    async def first_two() -> tuple[list[dict[str, Any] | BadRecord], bool, bool]:
        out = []
        records = agent(ctx, source="rows.jsonl").records()
        async for record in records:
            out.append(record)
            if len(out) == 2:
                break
        open_before = _is_open(rows)
        await records.aclose()
        return out, open_before, _is_open(rows)

    out, open_before, open_after = asyncio.run(first_two())
    assert out == [{"i": 0}, {"i": 1}]
    assert open_before and not open_after


# -- errors -------------------------------------------------------------------------------


def test_missing_file_names_the_path_and_the_fix(ctx: BuildContext, tmp_path: Path) -> None:
    with pytest.raises(AgentError, match=r"file not found: .*nope\.jsonl — check source"):
        collect(agent(ctx, source="nope.jsonl"))


def test_bad_json_line_is_a_bad_record_in_its_place(tmp_path: Path, ctx: BuildContext) -> None:
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    [(_, first), (key, bad), (last_key, last)] = collect_keyed(agent(ctx, source="bad.jsonl"))
    assert first == {"a": 1} and last == {"a": 3}
    assert isinstance(bad, BadRecord)
    assert bad.message.startswith(f"{tmp_path}/bad.jsonl:2: not valid JSON")
    # it holds its place: the keys after it do not move when it is fixed
    assert (key, last_key) == (f"{tmp_path}/bad.jsonl#1", f"{tmp_path}/bad.jsonl#2")


def test_csv_row_with_extra_fields_is_a_bad_record(tmp_path: Path, ctx: BuildContext) -> None:
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n1,2,3\n4,5\n")
    records = collect(agent(ctx, source="bad.csv"))
    assert [r for r in records if not isinstance(r, BadRecord)] == [
        {"a": "1", "b": "2"},
        {"a": "4", "b": "5"},
    ]
    [bad] = [r for r in records if isinstance(r, BadRecord)]
    assert bad.message.startswith(f"{tmp_path}/bad.csv:3: the row has more fields")


def test_a_folder_with_bad_files_goes_on_with_the_others(tmp_path: Path, ctx: BuildContext) -> None:
    import gzip

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.json").write_text('[{"id": "a1"}, {"id": ')  # cut short
    (folder / "b.txt").write_bytes("café".encode("latin-1"))
    whole = gzip.compress(b"".join(b'{"id": "c%d"}\n' % i for i in range(2000)))
    (folder / "c.jsonl.gz").write_bytes(whole[: len(whole) // 2])  # a damaged archive
    (folder / "d.jsonl").write_text('{"id": "d1"}\n')
    records = collect(agent(ctx, source="in"))
    ids = [r["id"] for r in records if not isinstance(r, BadRecord)]
    assert ids[-1] == "d1" and ids[0] == "c0"
    messages = [r.message for r in records if isinstance(r, BadRecord)]
    assert messages[0].startswith(f"{folder}/a.json:1: not valid JSON")
    assert messages[1] == (
        f"{folder}/b.txt: not UTF-8 text (unexpected end of data at byte 3) — save the file "
        "as UTF-8"
    )
    read_before = len(ids) - 1  # the c records read before the archive broke off, d1 after
    assert messages[2].startswith(
        f"{folder}/c.jsonl.gz#{read_before + 1}: cannot read on from record {read_before + 1}: "
    )
    assert messages[2].endswith("— the file is damaged or not jsonl")


def test_empty_glob_is_an_error(resources_ctx: BuildContext) -> None:
    with pytest.raises(AgentError, match=r"no files found at .*folder matching '\*\.xml'"):
        collect(agent(resources_ctx, source="folder", glob="*.xml"))


def test_template_source_cannot_start_a_batch(ctx: BuildContext) -> None:
    with pytest.raises(AgentError, match="is a template, so this step is a lookup"):
        collect(agent(ctx, source="kb/{{ id }}.json"))


def test_unknown_protocol(ctx: BuildContext) -> None:
    with pytest.raises(AgentError, match="unknown protocol"):
        collect(agent(ctx, source="nosuchproto://x/y.jsonl"))


# -- lookups ------------------------------------------------------------------------------


def test_lookup_json_object_goes_under_into(resources_ctx: BuildContext) -> None:
    a = agent(resources_ctx, source="kb/{{ data.customer_id }}.json", into="customer")
    out = lookup(a, {"customer_id": "C1", "text": "hi"})
    assert out == {
        "customer_id": "C1",
        "text": "hi",
        "customer": {"customer_id": "C1", "plan": "pro", "open_tickets": 2},
    }


def test_lookup_jsonl_is_a_list_and_top_level_names_work(resources_ctx: BuildContext) -> None:
    a = agent(resources_ctx, source="kb/{{ customer_id }}.jsonl")
    out = lookup(a, {"customer_id": "C2"})
    assert out["retrieved"] == [
        {"order": "o1", "customer_id": "C2"},
        {"order": "o2", "customer_id": "C2"},
    ]


def test_lookup_missing_fail_names_the_rendered_path(resources_ctx: BuildContext) -> None:
    a = agent(resources_ctx, source="kb/{{ customer_id }}.json")
    with pytest.raises(AgentError, match=r"nothing found at kb/C9\.json .*missing: empty"):
        lookup(a, {"customer_id": "C9"})


def test_lookup_missing_empty_puts_none(resources_ctx: BuildContext) -> None:
    a = agent(resources_ctx, source="kb/{{ customer_id }}.json", missing="empty", into="kb")
    assert lookup(a, {"customer_id": "C9"}) == {"customer_id": "C9", "kb": None}


def test_lookup_undefined_field_is_an_error(resources_ctx: BuildContext) -> None:
    a = agent(resources_ctx, source="kb/{{ customer_id }}.json")
    with pytest.raises(AgentError, match=r"'customer_id' is undefined.*fix the template"):
        lookup(a, {"other": 1})


def test_lookup_template_is_sandboxed(resources_ctx: BuildContext) -> None:
    a = agent(resources_ctx, source="{{ data.__class__.__mro__ }}.json")
    with pytest.raises(AgentError, match="fix the template"):
        lookup(a, {"x": 1})
    mutate = agent(resources_ctx, source="{{ data.update({'x': 2}) }}kb/C1.json")
    with pytest.raises(AgentError, match="fix the template"):
        lookup(mutate, {"x": 1})


def test_lookup_template_syntax_error_at_prepare(resources_ctx: BuildContext) -> None:
    a = agent(resources_ctx, source="kb/{{ customer_id .json")
    with pytest.raises(AgentError, match="template syntax error"):
        asyncio.run(a.prepare())


# -- S3 (a real moto server) --------------------------------------------------------------


def _bucket(endpoint: str, name: str, objects: dict[str, bytes]) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=name)
    for key, body in objects.items():
        s3.put_object(Bucket=name, Key=key, Body=body)


def test_s3_prefix_streams_every_object(
    moto_endpoint: str, s3_env: None, ctx: BuildContext
) -> None:
    _bucket(
        moto_endpoint,
        "customer-data",
        {
            "in/b.jsonl": b'{"id": "b1"}\n',
            "in/a.jsonl": b'{"id": "a1"}\n{"id": "a2"}\n',
            "in/c.csv": b"id\nc1\n",
            "other/x.jsonl": b'{"id": "x"}\n',
        },
    )
    options = {"client_kwargs": {"endpoint_url": moto_endpoint}}
    keyed = collect_keyed(agent(ctx, source="s3://customer-data/in/", storage_options=options))
    assert keyed == [
        ("s3://customer-data/in/a.jsonl#0", {"id": "a1"}),
        ("s3://customer-data/in/a.jsonl#1", {"id": "a2"}),
        ("s3://customer-data/in/b.jsonl#0", {"id": "b1"}),
        ("s3://customer-data/in/c.csv#0", {"id": "c1"}),
    ]
    only_jsonl = agent(
        ctx, source="s3://customer-data/in/", glob="*.jsonl", storage_options=options
    )
    assert [r["id"] for r in collect(only_jsonl)] == ["a1", "a2", "b1"]


def test_s3_lookup_and_missing_key(moto_endpoint: str, s3_env: None, ctx: BuildContext) -> None:
    _bucket(moto_endpoint, "kb-store", {"C1.json": b'{"plan": "pro"}'})
    options = {"client_kwargs": {"endpoint_url": moto_endpoint}}
    a = agent(ctx, source="s3://kb-store/{{ customer_id }}.json", storage_options=options)
    assert lookup(a, {"customer_id": "C1"})["retrieved"] == {"plan": "pro"}
    with pytest.raises(AgentError, match=r"nothing found at s3://kb-store/C2\.json"):
        lookup(a, {"customer_id": "C2"})
    missing = agent(ctx, source="s3://kb-store/none.jsonl", storage_options=options)
    with pytest.raises(
        AgentError, match=r"file not found: s3://kb-store/none\.jsonl — check the bucket"
    ):
        collect(missing)


# -- HTTP (a real local server) -----------------------------------------------------------


def test_http_jsonl_source_and_lookup(http_root: tuple[Path, str], ctx: BuildContext) -> None:
    root, base = http_root
    (root / "tickets.jsonl").write_bytes((DATA / "tickets.jsonl").read_bytes())
    keyed = collect_keyed(agent(ctx, source=f"{base}/tickets.jsonl"))
    assert [k for k, _ in keyed] == [f"{base}/tickets.jsonl#{i}" for i in range(3)]
    assert [r["id"] for _, r in keyed] == ["t1", "t2", "t3"]
    a = agent(ctx, source=base + "/{{ name }}.jsonl", missing="empty")
    assert len(lookup(a, {"name": "tickets"})["retrieved"]) == 3
    assert lookup(a, {"name": "absent"})["retrieved"] is None
