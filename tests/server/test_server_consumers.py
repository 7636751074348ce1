"""The server attaches a workflow's configured consumers to its runners like every command: a
``jsonl`` file and a plugin's consumer (installed by entry point) get each run's events; a
registrant cannot make the server append to a file outside the workflow's folders."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from relayflow.server.app import create_app
from tests.consumers.plugin import install_tally
from tests.server.helpers import client, make_token, serving, wait_for

PREP = "def transform(record):\n    return {**record, 'n': record.get('n', 0) + 1}\n"
WATCHED = """\
name: watched
workflow:
  - {name: prep, type: transform, script: prep.py}
  - {name: again, type: transform, script: prep.py}
consumers:
  - {type: jsonl, path: events.jsonl}
  - {type: tally, path: tally.txt}
"""


def test_runs_through_the_server_reach_the_configured_consumers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = install_tally(tmp_path / "site")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    folder = tmp_path / "root"
    folder.mkdir()
    (folder / "prep.py").write_text(PREP)
    (folder / "watched.yaml").write_text(WATCHED)
    store = str(tmp_path / "runs.db")
    admin = make_token(store, "root", "*=admin")
    with serving(store, folder) as server, client(server, admin) as c:
        registered = c.post("/v1/workflows", json={"path": str(folder / "watched.yaml")})
        assert registered.status_code == 201, registered.text
        run_id = c.post("/v1/workflows/watched/runs", json={"input": {"n": 1}}).json()["run_id"]
        wait_for(
            lambda: c.get(f"/v1/runs/{run_id}").json(),
            lambda body: body["status"] == "succeeded",
        )
        tally = wait_for(
            lambda: (folder / "tally.txt").read_text() if (folder / "tally.txt").exists() else "",
            lambda text: text != "",
        )
    assert tally == f"{run_id} succeeded\n"
    events: list[dict[str, Any]] = [
        json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()
    ]
    mine = [e for e in events if e.get("run_id") == run_id]
    assert [e["event"] for e in mine] == [
        "run_started",
        *("step_started", "step_finished") * 2,
        "run_finished",
    ]
    assert mine[-1]["output"] == {"n": 3}


def test_a_consumer_file_outside_the_workflow_folders_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "prep.py").write_text(PREP)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    text = (
        "name: nosy\nworkflow:\n  - {name: check, type: quality_check, min_confidence: 0}\n"
        f"consumers:\n  - {{type: jsonl, path: {outside / 'stolen.jsonl'}}}\n"
    )
    (root / "nosy.yaml").write_text(text)
    store = str(tmp_path / "runs.db")
    admin = make_token(store, "root", "*=admin")
    app = create_app(store, workers=1, workflow_roots=[root], workflows_dir=tmp_path / "kept")
    with TestClient(app, raise_server_exceptions=False) as c:
        answer = c.post(
            "/v1/workflows",
            json={"path": str(root / "nosy.yaml")},
            headers={"Authorization": f"Bearer {admin}"},
        )
    assert answer.status_code == 422
    [problem] = answer.json()["detail"]
    assert "consumers[0].path: names a file outside the workflow's own folder" in problem
    assert not (outside / "stolen.jsonl").exists()
