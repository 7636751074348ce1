"""Registering a workflow runs its code as the server's user: the role is checked before any
file is touched, a file is read only when it is a regular ``.yaml`` under a ``--workflow-root``
(bounded, off the event loop), every file a workflow names must be in its bundle or under a
root, code needs the ``+code`` right, and every registration is recorded."""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from relayflow.server.app import create_app
from tests.server.helpers import client, make_token, serving, wait_for

PREP = "def transform(record):\n    return {**record, 'n': record.get('n', 0) + 1}\n"
PLAIN = "workflow:\n  - {name: check, type: quality_check, min_confidence: 0}\n"


def coded(script: str = "prep.py") -> str:
    return f"workflow:\n  - {{name: prep, type: transform, script: {script}}}\n"


# ---- through a real server: a FIFO must not block the event loop --------------------------------


def test_a_fifo_path_is_refused_and_the_server_keeps_answering(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    fifo = root / "pipe.yaml"
    os.mkfifo(fifo)
    store = str(tmp_path / "runs.db")
    admin = make_token(store, "root", "*=admin")
    viewer = make_token(store, "view", "*=viewer")
    with serving(store, tmp_path, roots=[root]) as server:
        answers: dict[str, httpx.Response] = {}

        def register(who: str, secret: str) -> None:
            with client(server, secret) as c:
                answers[who] = c.post("/v1/workflows", json={"path": str(fifo)})

        # a blocking open of the FIFO would hang these requests and every later one
        threads = [
            threading.Thread(target=register, args=(who, secret))
            for who, secret in (("viewer", viewer), ("admin", admin))
        ]
        for thread in threads:
            thread.start()
        health = httpx.get(f"{server.url}/v1/health", timeout=30)
        for thread in threads:
            thread.join(60)
        assert health.status_code == 200
        assert answers["viewer"].status_code == 403  # the role first: the file is not touched
        assert answers["admin"].status_code == 422
        assert answers["admin"].json()["detail"] == [
            f"{fifo}: path: is not a regular file — name the workflow's YAML file itself"
        ]
        assert httpx.get(f"{server.url}/v1/health", timeout=30).status_code == 200


# ---- in process ---------------------------------------------------------------------------------


class Api:
    def __init__(self, client: TestClient, tokens: dict[str, str]) -> None:
        self.client, self.tokens = client, tokens

    def post(self, who: str, body: dict[str, Any]) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return self.client.post("/v1/workflows", json=body, headers=headers)

    def get(self, who: str, url: str) -> Any:
        return self.client.get(url, headers={"Authorization": f"Bearer {self.tokens[who]}"})


def tokens_for(store: str) -> dict[str, str]:
    return {
        "admin": make_token(store, "root", "*=admin"),
        "scoped": make_token(store, "team-admin", "mine=admin"),
        "coder": make_token(store, "team-coder", "mine=admin+code"),
        "viewer": make_token(store, "view", "*=viewer"),
    }


def open_api(tmp_path: Path, roots: list[Path]) -> Iterator[Api]:
    store = str(tmp_path / "runs.db")
    tokens = tokens_for(store)
    app = create_app(store, workers=2, workflow_roots=roots, workflows_dir=tmp_path / "kept")
    with TestClient(app, raise_server_exceptions=False) as c:
        yield Api(c, tokens)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    (folder / "prep.py").write_text(PREP)
    (folder / "plain.yaml").write_text("name: mine\n" + PLAIN)
    (folder / "coded.yaml").write_text("name: mine\n" + coded())
    return folder


@pytest.fixture
def api(tmp_path: Path, root: Path) -> Iterator[Api]:
    yield from open_api(tmp_path, [root])


@pytest.fixture
def rootless(tmp_path: Path) -> Iterator[Api]:
    yield from open_api(tmp_path, [])


def detail(answer: Any) -> str:
    return "\n".join(answer.json()["detail"])


def test_dev_zero_is_refused_without_being_read(api: Api) -> None:
    answer = api.post("admin", {"path": "/dev/zero"})
    assert answer.status_code == 422
    assert detail(answer).startswith("/dev/zero: path: not under one of the server's workflow")


def test_a_link_out_of_a_root_is_refused_as_where_it_leads(api: Api, root: Path) -> None:
    (root / "zero.yaml").symlink_to("/dev/zero")
    (root / "secret.yaml").symlink_to(root.parent / "runs.db")
    for name in ("zero.yaml", "secret.yaml"):
        answer = api.post("admin", {"path": str(root / name)})
        assert answer.status_code == 422
        assert "not under one of the server's workflow roots" in detail(answer)


def test_a_viewer_is_refused_before_anything_is_read(api: Api, root: Path) -> None:
    for path in ("/dev/zero", str(root / "plain.yaml")):
        answer = api.post("viewer", {"path": path})
        assert answer.status_code == 403
        assert "may not register" in answer.json()["detail"]


def test_without_a_root_registration_by_path_is_off(rootless: Api, root: Path) -> None:
    answer = rootless.post("admin", {"path": str(root / "plain.yaml")})
    assert answer.status_code == 422
    assert "registering by path is off on this server" in detail(answer)
    # the YAML itself, with its files as a bundle, still works
    bundle = {"name": "mine", "yaml": coded(), "files": {"prep.py": PREP}}
    assert rootless.post("admin", bundle).status_code == 201


def test_errors_of_a_file_on_disk_never_quote_its_values(api: Api, root: Path) -> None:
    (root / "leak.yaml").write_text("workflow: postgres://admin:hunter2@db/prod\n")
    (root / "leak.env").write_text("workflow: postgres://admin:hunter2@db/prod\n")
    answer = api.post("admin", {"path": str(root / "leak.yaml")})
    assert answer.status_code == 422
    assert "hunter2" not in answer.text
    assert "workflow: input should be a valid list" in detail(answer)
    other = api.post("admin", {"path": str(root / "leak.env")})
    assert other.status_code == 422 and "not a workflow file (.yaml or .yml)" in detail(other)
    assert "hunter2" not in other.text


@pytest.mark.parametrize(
    ("yaml", "field"),
    [
        ("workflow:\n  - {name: prep, type: transform, script: ../../../x.py}\n", "prep.script"),
        ("workflow:\n  - {name: src, type: retrieval, source: /etc/shadow}\n", "src.source"),
        ("workflow:\n  - {name: src, type: retrieval, source: ../../../x.py}\n", "src.source"),
        (PLAIN + "evaluate: {golden: /etc/hostname}\n", "evaluate.golden"),
        (PLAIN + "allow: [/]\n", "allow[0]"),
        (
            PLAIN + "models:\n  m: {provider: sklearn, model: /etc/hostname}\n",
            "models.m.model",
        ),
    ],
)
def test_a_file_named_outside_the_bundle_and_the_roots_is_refused(
    api: Api, tmp_path: Path, yaml: str, field: str
) -> None:
    (tmp_path / "x.py").write_text(PREP)  # exists, beside the kept folders but outside
    answer = api.post("admin", {"name": "mine", "yaml": yaml})
    assert answer.status_code == 422, answer.text
    assert f"{field}: names a file outside the workflow's own folder" in detail(answer)
    assert api.get("admin", "/v1/workflows").json() == []


def test_a_scoped_admin_needs_plus_code_for_a_workflow_that_runs_code(
    api: Api, root: Path, tmp_path: Path
) -> None:
    refused = api.post("scoped", {"path": str(root / "coded.yaml"), "name": "mine"})
    assert refused.status_code == 403
    assert "may not register a workflow that runs code on workflow 'mine'" in refused.text
    bundle = {"name": "mine", "yaml": coded(), "files": {"prep.py": PREP}}
    assert api.post("scoped", bundle).status_code == 403
    assert not [p for p in (tmp_path / "kept").rglob("prep.py")]  # nothing left behind
    assert api.post("scoped", {"path": str(root / "plain.yaml"), "name": "mine"}).status_code == 201
    assert api.post("coder", bundle).status_code == 201
    denials = api.get("admin", "/v1/denials").json()
    assert {(d["token_name"], d["action"], d["workflow"]) for d in denials} >= {
        ("team-admin", "register_code", "mine")
    }
    # a scoped admin names the workflow: without a name only a '*' grant covers the file
    unnamed = api.post("coder", {"path": str(root / "coded.yaml")})
    assert unnamed.status_code == 403 and "name the workflow" in unnamed.text


def test_a_bundle_carries_its_files_and_runs(api: Api, tmp_path: Path) -> None:
    yaml = (
        "workflow:\n"
        "  - {name: prep, type: transform, script: scripts/prep.py}\n"
        "  - {name: check, type: quality_check, ruleset: rules/schema.json, min_confidence: 0}\n"
    )
    files = {
        "scripts/prep.py": PREP,
        "rules/schema.json": {"base64": base64.b64encode(b'{"type": "object"}').decode()},
    }
    answer = api.post("admin", {"name": "mine", "yaml": yaml, "files": files})
    assert answer.status_code == 201, answer.text
    version = answer.json()["version"]
    kept = tmp_path / "kept" / "mine" / version
    assert (kept / "scripts" / "prep.py").read_text() == PREP
    headers = {"Authorization": f"Bearer {api.tokens['admin']}"}
    run = api.client.post("/v1/workflows/mine/runs", json={"input": {"n": 1}}, headers=headers)
    done = wait_for(
        lambda: api.get("admin", f"/v1/runs/{run.json()['run_id']}").json(),
        lambda r: r["status"] in ("succeeded", "failed"),
    )
    assert done["status"] == "succeeded" and done["output"] == {"n": 2}
    # other files, same YAML: another version
    files["scripts/prep.py"] = PREP.replace("+ 1", "+ 2")
    again = api.post("admin", {"name": "mine", "yaml": yaml, "files": files})
    assert again.status_code == 201 and again.json()["version"] != version


@pytest.mark.parametrize(
    "name",
    [
        "../evil.py",
        "/etc/evil.py",
        "a/../../evil.py",
        "a//b.py",
        "./a.py",
        "a\\b.py",
        "workflow.yaml",
    ],
)
def test_a_bundle_path_that_could_escape_is_refused(api: Api, tmp_path: Path, name: str) -> None:
    answer = api.post("admin", {"name": "mine", "yaml": PLAIN, "files": {name: "x = 1"}})
    assert answer.status_code == 422, answer.text
    assert repr(name) in detail(answer)
    assert not (tmp_path / "evil.py").exists() and not Path("/etc/evil.py").exists()


def test_every_registration_is_recorded_with_who_and_what(api: Api, root: Path) -> None:
    first = api.post("coder", {"path": str(root / "coded.yaml"), "name": "mine"})
    again = api.post("admin", {"path": str(root / "coded.yaml"), "name": "mine"})
    assert first.status_code == again.status_code == 201
    assert first.json()["version"] == again.json()["version"]
    rows = api.get("viewer", "/v1/workflows/mine/registrations").json()
    assert [(r["registered_by"], r["source"], r["runs_code"]) for r in rows] == [
        ("root", "path", True),
        ("team-coder", "path", True),
    ]
    assert rows[0]["files_hash"] == rows[1]["files_hash"] and len(rows[0]["files_hash"]) == 64
    (root / "prep.py").write_text(PREP + "# changed\n")
    changed = api.post("admin", {"path": str(root / "coded.yaml"), "name": "mine"})
    latest = api.get("viewer", "/v1/workflows/mine/registrations").json()[0]
    assert changed.status_code == 201 and latest["files_hash"] != rows[0]["files_hash"]
    versions = api.get("viewer", "/v1/workflows/mine").json()["versions"]
    assert [v["registered_by"] for v in versions] == ["team-coder"]
