"""``allow:``: folders (relative to the YAML) and URL prefixes a lookup may read, each checked at
its line; a lookup whose URL host is a variable needs one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from relayflow.errors import Problem, SpecError
from relayflow.spec.loader import load_spec

Write = Callable[..., Path]
Problems = Callable[[str], list[Problem]]

LOOKUP = (
    "workflow:\n  - {name: Ids, type: retrieval, source: preprocess.py, format: text}\n"
    "  - name: Lookup\n    type: retrieval\n    source: '{source}'\n"
)


def _lookup(source: str) -> str:
    return LOOKUP.replace("{source}", source)


def test_good_entries_load(write: Write, workdir: Path) -> None:
    (workdir / "shared").mkdir()
    wf = load_spec(
        write(
            _lookup("kb/{{ id }}.json")
            + "allow:\n  - shared\n  - file://shared\n  - https://kb.example/docs/\n"
            "  - s3://bucket/prefix/\n  - package://river/datasets/\n"
            f"  - {workdir / 'templates'}\n"
        )
    )
    assert wf.spec.allow[2] == "https://kb.example/docs/"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("nowhere", "folder not found: {dir}/nowhere"),
        ("preprocess.py", "not a folder: {dir}/preprocess.py"),
        ("'{{ root }}'", "a template"),
        ("https://", "'https://' is not a URL prefix with a host"),
        ("https://kb.example/a/../b/", "'https://kb.example/a/../b/' is not a URL prefix"),
        ("''", "empty"),
        ("1", "input should be a valid string"),
    ],
)
def test_a_bad_entry_is_reported_at_its_line(
    problems: Problems, workdir: Path, entry: str, message: str
) -> None:
    problem = _one(problems, entry)
    assert problem.message.startswith(message.format(dir=workdir)), problem
    assert (problem.line, problem.field) == (7, "allow[0]")


def _one(problems: Problems, entry: str) -> Problem:
    [problem] = problems(_lookup("kb/{{ id }}.json") + f"allow:\n  - {entry}\n")
    return problem


def test_allow_must_be_a_list(problems: Problems) -> None:
    [problem] = problems(_lookup("kb/{{ id }}.json") + "allow: shared\n")
    assert (problem.line, problem.field) == (6, "allow")
    assert problem.message.startswith("input should be a valid list")


@pytest.mark.parametrize(
    "source", ["https://{{ host }}/doc.json", "s3://{{ bucket }}/a.json", "http://kb{{ x }}/a"]
)
def test_a_lookup_whose_host_is_data_needs_an_allowed_prefix(
    problems: Problems, write: Write, source: str
) -> None:
    [problem] = problems(_lookup(source))
    assert (problem.line, problem.field) == (5, "Lookup.source")
    assert problem.message == "the URL's host comes from the data, so this lookup may read nothing"
    scheme = source.partition("://")[0]
    load_spec(write(_lookup(source) + f"allow: ['{scheme}://kb.example/']\n"))


def test_an_overlay_s_allow_is_relative_to_the_base_s_folder(write: Write, workdir: Path) -> None:
    (workdir / "shared").mkdir()
    write(_lookup("kb/{{ id }}.json"), "base.yaml")
    overlay = write("extends: ../base.yaml\nallow: [shared]\n", "local/overlay.yaml")
    assert load_spec(overlay).spec.allow == ["shared"]
    bad = write("extends: ../base.yaml\nallow: [nowhere]\n", "local/bad.yaml")
    with pytest.raises(SpecError) as info:
        load_spec(bad)
    assert str(info.value).startswith(
        f"{bad}:2: allow[0]: folder not found: {workdir}/local/../nowhere"
    )
