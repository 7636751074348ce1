"""A lookup's rendered source stays inside the roots its workflow declares: the workflow's folder,
``allow:``, a URL template's fixed prefix. Files (symlinks too), S3 (moto) and HTTP (a real
server on loopback), each escape tried the way an attacker would write it."""

from __future__ import annotations

import asyncio
import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relayflow.agents.base import BuildContext
from relayflow.agents.retrieval import RetrievalAgent, RetrievalConfig
from relayflow.core.handoff import Handoff
from relayflow.core.result import StepInfo
from relayflow.errors import AgentError
from relayflow.spec.loader import load_spec

STEP = StepInfo(run_id="r1", step="Lookup", attempt=1)
SECRET = '{"secret": "do not read"}\n'


def _no_provider(alias: str) -> Any:
    raise AssertionError(alias)


def _workflow_ctx(folder: Path, source: str, allow: list[str] | None = None) -> BuildContext:
    """The context of a real, validated workflow in ``folder`` whose second step looks up
    ``source`` (with ``allow:`` when given)."""
    (folder / "ids.jsonl").write_text('{"id": 1}\n')
    text = "workflow:\n  - {name: Ids, type: retrieval, source: ids.jsonl}\n"
    text += f"  - name: Lookup\n    type: retrieval\n    source: {source!r}\n"
    if allow is not None:
        text += "allow:\n" + "".join(f"  - {entry!r}\n" for entry in allow)
    workflow = load_spec(_write(folder / "workflow.yaml", text))
    return BuildContext(folder, workflow.file, _no_provider, workflow=workflow)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _lookup(ctx: BuildContext, source: str, data: dict[str, Any], **settings: Any) -> Any:
    config = RetrievalConfig(name="Lookup", type="retrieval", source=source, **settings)
    agent = RetrievalAgent(config, ctx)

    async def go() -> Any:
        await agent.prepare()
        result = await agent.run(Handoff(data=data, run_id="r1"), STEP)
        return result.data[config.into]

    return asyncio.run(go())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """``tmp/outside/secret.json`` beside ``tmp/project/`` (the workflow's folder), which holds
    ``docs/guide.json``."""
    _write(tmp_path / "outside" / "secret.json", SECRET)
    folder = tmp_path / "project"
    _write(folder / "docs" / "guide.json", '{"guide": true}\n')
    return folder


def _refused(ctx: BuildContext, source: str, value: str, **settings: Any) -> str:
    with pytest.raises(AgentError) as info:
        _lookup(ctx, source, {"doc": value}, **settings)
    message = str(info.value)
    assert message.startswith(f"step Lookup: source {source!r} rendered to ")
    assert "which this workflow may not read" in message
    assert "add the folder or URL prefix to the top-level `allow:` list" in message
    assert "\n" not in message
    return message


# -- files ---------------------------------------------------------------------------------


def test_the_issue_s_traversal_to_etc_passwd_is_refused(project: Path) -> None:
    """The issue: ``docs/{{ doc }}`` with ``../../../../etc/passwd`` returned /etc/passwd
    (here with enough ``..`` to reach / from the test's folder)."""
    ctx = _workflow_ctx(project, "docs/{{ doc }}")
    value = "../" * (len(project.parts) + 1) + "etc/passwd"
    message = _refused(ctx, "docs/{{ doc }}", value, format="text")
    assert f"rendered to 'docs/{value}'" in message and "it is outside" in message
    assert str(project) in message  # the root it may read


def test_a_lookup_inside_the_folder_still_reads(project: Path) -> None:
    ctx = _workflow_ctx(project, "docs/{{ doc }}")
    assert _lookup(ctx, "docs/{{ doc }}", {"doc": "guide.json"}) == {"guide": True}
    # `..` that stays inside is fine, so is `//`
    assert _lookup(ctx, "docs/{{ doc }}", {"doc": "../docs//guide.json"}) == {"guide": True}


@pytest.mark.parametrize(
    "value",
    [
        "../../outside/secret.json",
        "%2e%2e/%2e%2e/outside/secret.json",
        "%2E%2E%2F%2E%2E%2Foutside%2Fsecret.json",
        "%252e%252e/%252e%252e/outside/secret.json",  # encoded twice
        "..\\..\\outside\\secret.json",
        "..%5c..%5coutside%5csecret.json",
    ],
)
def test_every_spelling_of_dot_dot_is_refused(project: Path, value: str) -> None:
    ctx = _workflow_ctx(project, "docs/{{ doc }}")
    _refused(ctx, "docs/{{ doc }}", value, missing="empty")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("guide.json\x00.txt", "control character"),
        ("guide\n.json", "control character"),
        ("guide.json::file:///etc/passwd", "'::'"),
    ],
)
def test_nul_bytes_and_chained_filesystems_are_refused(project: Path, value: str, why: str) -> None:
    ctx = _workflow_ctx(project, "docs/{{ doc }}")
    assert why in _refused(ctx, "docs/{{ doc }}", value)


@pytest.mark.parametrize(
    "value",
    ["/etc/passwd", "//etc/passwd", "file:///etc/passwd", "~/.bashrc", "{secret}"],
)
def test_a_whole_path_from_the_data_must_land_in_the_folder(project: Path, value: str) -> None:
    secret = str(project.parent / "outside" / "secret.json")
    ctx = _workflow_ctx(project, "{{ doc }}")
    _refused(ctx, "{{ doc }}", value.format(secret=secret), missing="empty")


def test_a_symlink_that_points_out_is_refused_and_one_inside_is_read(project: Path) -> None:
    os.symlink(project.parent / "outside" / "secret.json", project / "docs" / "evil.json")
    os.symlink(project / "docs" / "guide.json", project / "docs" / "alias.json")
    ctx = _workflow_ctx(project, "docs/{{ doc }}")
    assert "it is outside" in _refused(ctx, "docs/{{ doc }}", "evil.json")
    assert _lookup(ctx, "docs/{{ doc }}", {"doc": "alias.json"}) == {"guide": True}


def test_a_folder_lookup_reads_only_what_is_inside(project: Path) -> None:
    _write(project / "kb" / "a" / "one.json", '{"n": 1}\n')
    os.symlink(project.parent / "outside" / "secret.json", project / "kb" / "a" / "link.json")
    os.symlink(project.parent / "outside", project / "kb" / "a" / "escape")
    ctx = _workflow_ctx(project, "kb/{{ doc }}")
    assert _lookup(ctx, "kb/{{ doc }}", {"doc": "a"}) == {"n": 1}  # links are not listed
    for value in ("a/escape", "a/escape/*", "a/escape/secret.json", "a/link.json"):
        _refused(ctx, "kb/{{ doc }}", value)


def test_allow_opens_a_folder_outside_and_nothing_else(project: Path) -> None:
    ctx = _workflow_ctx(project, "{{ doc }}", allow=["../outside"])
    secret = project.parent / "outside" / "secret.json"
    assert _lookup(ctx, "{{ doc }}", {"doc": str(secret)}) == {"secret": "do not read"}
    _write(project.parent / "other" / "x.json", "{}\n")
    _refused(ctx, "{{ doc }}", str(project.parent / "other" / "x.json"))


def test_a_refused_path_is_refused_even_with_missing_empty(project: Path) -> None:
    ctx = _workflow_ctx(project, "docs/{{ doc }}")
    _refused(ctx, "docs/{{ doc }}", "../../nowhere.json", missing="empty")


# -- HTTP (real servers on loopback) -------------------------------------------------------


class _Recorder(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[str, str, list[str], list[str]]]:
    """Two HTTP servers on 127.0.0.1: the knowledge base (``/kb/a.json``, ``/secret.json``)
    and another one (``/secret.json``); with the paths each was asked for."""
    made = []
    for name in ("kb", "evil"):
        root = tmp_path / f"www-{name}"
        _write(root / "kb" / "a.json", '{"a": 1}\n')
        _write(root / "secret.json", SECRET)
        handler = functools.partial(_Recorder, directory=str(root))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.paths = []  # type: ignore[attr-defined]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        made.append((server, thread))
    (kb, _), (evil, _) = made
    yield (
        f"http://127.0.0.1:{kb.server_address[1]}",
        f"http://127.0.0.1:{evil.server_address[1]}",
        kb.paths,  # type: ignore[attr-defined]
        evil.paths,  # type: ignore[attr-defined]
    )
    for server, thread in made:
        server.shutdown()
        server.server_close()
        thread.join()


def test_an_http_lookup_stays_under_its_template_s_prefix(
    tmp_path: Path, servers: tuple[str, str, list[str], list[str]]
) -> None:
    kb, evil, kb_paths, evil_paths = servers
    source = kb + "/kb/{{ doc }}"
    ctx = _workflow_ctx(tmp_path, source)
    assert _lookup(ctx, source, {"doc": "a.json"}) == {"a": 1}
    escapes = [
        "../secret.json",
        "%2e%2e/secret.json",
        "%252e%252e/secret.json",
        "..%2fsecret.json",
        "..\\secret.json",
        "./../secret.json",
    ]
    for value in escapes:
        _refused(ctx, source, value, missing="empty")
    # these stay on the knowledge base's host, under /kb/: asked there, and nothing is found
    port = evil.rsplit(":", 1)[1]
    for value in (f"@127.0.0.1:{port}/secret.json", "//evil/secret.json", evil + "/secret.json"):
        assert _lookup(ctx, source, {"doc": value}, missing="empty") is None
    assert set(kb_paths) == {  # (fsspec may ask a URL more than once)
        "/kb/a.json",
        f"/kb/@127.0.0.1:{port}/secret.json",
        "/kb///evil/secret.json",
        f"/kb/http://127.0.0.1:{port}/secret.json",
    }
    assert evil_paths == []


def test_a_host_from_the_data_reads_only_what_allow_lists(
    tmp_path: Path, servers: tuple[str, str, list[str], list[str]]
) -> None:
    kb, evil, kb_paths, evil_paths = servers
    source = "http://127.0.0.1:{{ port }}/kb/a.json"
    ctx = _workflow_ctx(tmp_path, source, allow=[kb + "/kb/"])
    kb_port, evil_port = kb.rsplit(":", 1)[1], evil.rsplit(":", 1)[1]
    assert _lookup(ctx, source, {"port": kb_port}) == {"a": 1}
    with pytest.raises(AgentError, match="which this workflow may not read"):
        _lookup(ctx, source, {"port": evil_port})
    whole = "{{ doc }}"
    ctx = _workflow_ctx(tmp_path, whole, allow=[kb + "/kb/"])
    for value in (kb + "/secret.json", kb + "/kbx/a.json", evil + "/kb/a.json"):
        _refused(ctx, whole, value)
    assert _lookup(ctx, whole, {"doc": kb + "/kb/a.json"}) == {"a": 1}
    assert evil_paths == []
    assert "/secret.json" not in kb_paths


# -- S3 (moto) -----------------------------------------------------------------------------


def _bucket(endpoint: str, name: str, objects: dict[str, bytes]) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=name)
    for key, body in objects.items():
        s3.put_object(Bucket=name, Key=key, Body=body)


def test_an_s3_lookup_cannot_leave_its_bucket_and_prefix(
    moto_endpoint: str, s3_env: None, tmp_path: Path
) -> None:
    _bucket(moto_endpoint, "kb-public", {"docs/a.json": b'{"a": 1}', "private.json": b"{}"})
    _bucket(moto_endpoint, "kb-secret", {"secret.json": SECRET.encode()})
    options = {"client_kwargs": {"endpoint_url": moto_endpoint}}
    source = "s3://kb-public/docs/{{ doc }}"
    ctx = _workflow_ctx(tmp_path, source)
    assert _lookup(ctx, source, {"doc": "a.json"}, storage_options=options) == {"a": 1}
    for value in (
        "../private.json",
        "../../kb-secret/secret.json",
        "%2e%2e/%2e%2e/kb-secret/secret.json",
        "..%2f..%2fkb-secret%2fsecret.json",
    ):
        _refused(ctx, source, value, storage_options=options, missing="empty")
    # a whole URL as the value is a key under docs/ of the same bucket: nothing there
    whole = _lookup(
        ctx,
        source,
        {"doc": "s3://kb-secret/secret.json"},
        storage_options=options,
        missing="empty",
    )
    assert whole is None


def test_an_s3_bucket_from_the_data_needs_allow(
    moto_endpoint: str, s3_env: None, tmp_path: Path
) -> None:
    _bucket(moto_endpoint, "team-a", {"public/a.json": b'{"a": 1}', "secret.json": b"{}"})
    options = {"client_kwargs": {"endpoint_url": moto_endpoint}}
    source = "s3://{{ bucket }}/{{ key }}"
    ctx = _workflow_ctx(tmp_path, source, allow=["s3://team-a/public/"])
    data = {"bucket": "team-a", "key": "public/a.json"}
    assert _lookup(ctx, source, data, storage_options=options) == {"a": 1}
    with pytest.raises(AgentError, match="which this workflow may not read"):
        _lookup(ctx, source, {**data, "key": "secret.json"}, storage_options=options)
