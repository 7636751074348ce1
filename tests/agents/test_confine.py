"""The pure parts of lookup confinement: fixed prefixes, URL roots and how URLs compare."""

from __future__ import annotations

from pathlib import Path

import pytest

from relayflow.agents.confine import (
    Roots,
    literal_prefix,
    place_refusal,
    roots_for,
    text_refusal,
    url_root,
)


def test_the_literal_prefix_ends_at_the_first_variable_statement_or_comment() -> None:
    assert literal_prefix("https://kb/docs/{{ id }}.json") == "https://kb/docs/"
    assert literal_prefix("s3://b/{% if x %}a{% endif %}") == "s3://b/"
    assert literal_prefix("kb/{# note #}{{ x }}") == "kb/"
    assert literal_prefix("plain.json") == "plain.json"


@pytest.mark.parametrize("prefix", ["https://", "https://{{ h }}/", "s3://", "kb/docs/"])
def test_a_prefix_without_a_host_is_no_url_root(prefix: str) -> None:
    assert url_root(literal_prefix(prefix)) is None


def _roots(*urls: str) -> Roots:
    made = [url_root(u) for u in urls]
    assert all(made)
    return Roots((), tuple(r for r in made if r is not None))


@pytest.mark.parametrize(
    ("url", "inside"),
    [
        ("https://kb.example/docs/a.json", True),
        ("https://KB.example:443/docs/a.json", True),  # case and the default port
        ("https://kb.example/docs", True),
        ("https://kb.example//docs///a.json", True),  # runs of / are one
        ("https://kb.example/docsx/a.json", False),  # on a / boundary only
        ("https://kb.example:8443/docs/a.json", False),
        ("http://kb.example/docs/a.json", False),
        ("https://user@kb.example/docs/a.json", False),
        ("https://kb.example@evil.example/docs/a.json", False),
        ("https://evil.example/docs/a.json", False),
        ("https://kb.example.evil/docs/a.json", False),
        ("https://kb.example/docs/../private", False),
        ("https://kb.example/docs/%2e%2e/private", False),
        ("https://kb.example/docs/.%2E/private", False),
        ("https://kb.example/docs/..%5cprivate", False),
        ("https://kb.example:99999/docs/a", False),  # no such port
        ("https://[::1/docs/a", False),  # not a URL
    ],
)
def test_urls_compare_by_scheme_host_port_and_path_prefix(url: str, inside: bool) -> None:
    roots = _roots("https://kb.example/docs/")
    assert (place_refusal(url, None, roots) is None) is inside


def test_an_ipv6_host_is_not_a_filesystem_chain() -> None:
    assert text_refusal("http://[::1]:8080/kb/a.json", "{{ url }}") is None
    assert (
        text_refusal("a.json::file:///etc/passwd", "{{ x }}") == "it chains filesystems with '::'"
    )
    assert text_refusal("zip://x::a.zip", "zip://x::{{ f }}") is None  # the template wrote it


def test_roots_hold_the_folder_allow_and_the_template_prefix(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    roots = roots_for(
        "https://kb.example/docs/v{{ n }}/a.json",
        tmp_path,
        ["shared", "s3://bucket/pub/", "package://nowhere_at_all/data/"],
        lambda url: None,
    )
    assert roots.folders == (str(tmp_path.resolve()), str((tmp_path / "shared").resolve()))
    assert [str(r) for r in roots.urls] == ["s3://bucket/pub/", "https://kb.example:443/docs/"]
