"""Lone surrogates (JSON allows ``"\\ud800"``; UTF-8 cannot carry it): refused with a 422 naming
the field wherever a client sends one, and never able to break a listing, a run's page or
``relayflow runs show`` when one is already in the store or comes from a script."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from relayflow.server.app import create_app
from relayflow.store import schema
from relayflow.store.sql_store import SqlStore
from tests.server.conftest import make_tokens
from tests.server.helpers import wait_for, write_workflows

#: a transform that writes a lone surrogate into its output, as a model or a source might
EMIT = "def transform(record):\n    return {**record, 'y': 'a\\ud800b'}\n"
EMITTING = "name: emitting\nworkflow:\n  - {name: emit, type: transform, script: emit.py}\n"
#: the raw JSON bodies, as a client sends them (json.dumps would escape them the same way)
LONE = '"\\ud800"'


class Api:
    def __init__(self, client: TestClient, tokens: dict[str, str], store: str) -> None:
        self.client, self.tokens, self.store = client, tokens, store

    def post(self, who: str, url: str, raw: str) -> Any:
        return self.client.post(
            url,
            content=raw.encode(),
            headers={
                "Authorization": f"Bearer {self.tokens[who]}",
                "content-type": "application/json",
            },
        )

    def get(self, who: str, url: str, **params: Any) -> Any:
        return self.client.get(
            url, params=params, headers={"Authorization": f"Bearer {self.tokens[who]}"}
        )


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    files = write_workflows(tmp_path)
    (tmp_path / "emit.py").write_text(EMIT)
    files["emitting"] = tmp_path / "emitting.yaml"
    files["emitting"].write_text(EMITTING)
    store = str(tmp_path / "runs.db")
    tokens = make_tokens(store)
    app = create_app(store, workers=2, workflow_roots=[tmp_path])
    with TestClient(app, raise_server_exceptions=False) as client:
        site = Api(client, tokens, store)
        for file in files.values():
            answer = site.post("admin", "/v1/workflows", json.dumps({"path": str(file)}))
            assert answer.status_code == 201, answer.text
        yield site


def parked(api: Api) -> str:
    run = api.post("operator", "/v1/workflows/reviewed/runs", '{"input": {"review": true}}')
    run_id: str = run.json()["run_id"]
    wait_for(
        lambda: api.get("admin", f"/v1/runs/{run_id}").json()["status"],
        lambda s: s == "waiting_review",
    )
    return run_id


def test_a_run_with_a_lone_surrogate_is_refused_and_listings_stay_whole(api: Api) -> None:
    before = api.get("admin", "/v1/runs", limit=1000).json()
    answer = api.post("operator", "/v1/workflows/slow/runs", f'{{"input": {{"x": {LONE}}}}}')
    assert answer.status_code == 422
    [problem] = answer.json()["detail"]
    assert "body.input.x: text with a lone surrogate" in problem["msg"]
    assert api.get("admin", "/v1/runs", limit=1000).json() == before  # nothing was queued
    assert api.get("viewer", "/v1/runs").status_code == 200
    assert api.get("viewer", "/v1/reviews").status_code == 200


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/v1/workflows/slow/runs", '{"input": {"a": [{"b": {"c": %s}}]}}', "body.input.a[0].b.c"),
        ("/v1/workflows/slow/runs", '{"input": {%s: 1}}', "body.input."),
        ("/v1/workflows/slow/runs", '{"input": {}, "item_key": %s}', "body.item_key"),
        ("/v1/workflows/slow/batches", '{"inputs": [{}, {"x": %s}]}', "body.inputs[1].x"),
        ("/v1/feedback", '{"workflow": "slow", "label": {"y": %s}}', "body.label.y"),
        ("/v1/workflows", '{"name": "w", "yaml": %s}', "body.yaml"),
    ],
)
def test_a_lone_surrogate_anywhere_in_any_body_is_a_422_naming_the_field(
    api: Api, url: str, body: str, field: str
) -> None:
    answer = api.post("admin", url, body % LONE)
    assert answer.status_code == 422, answer.text
    message = answer.json()["detail"][0]["msg"]
    assert f"{field}" in message and "lone surrogate" in message
    assert "\ud800" not in answer.text and '\\ud800"' not in answer.text


def test_a_correction_with_a_lone_surrogate_is_refused_and_the_review_stays_pending(
    api: Api,
) -> None:
    run_id = parked(api)
    url = f"/v1/reviews/{run_id}:check/correct"
    answer = api.post("reviewer", url, f'{{"output": {{"n": {LONE}}}}}')
    assert answer.status_code == 422
    assert "body.output.n" in answer.json()["detail"][0]["msg"]
    assert api.get("reviewer", f"/v1/reviews/{run_id}:check").json()["status"] == "pending"
    assert api.get("viewer", "/v1/reviews").status_code == 200


def test_a_surrogate_a_script_writes_is_served_as_a_replacement_character(api: Api) -> None:
    run = api.post("admin", "/v1/workflows/emitting/runs", '{"input": {"x": 1}}')
    assert run.status_code == 202
    run_id = run.json()["run_id"]
    done = wait_for(
        lambda: api.get("admin", f"/v1/runs/{run_id}").json(),
        lambda r: r["status"] == "succeeded",
    )
    assert done["output"]["y"] == "a\ufffdb"
    assert done["steps"][0]["output"]["y"] == "a\ufffdb"
    listing = api.get("admin", "/v1/runs", workflow="emitting")
    assert listing.status_code == 200 and listing.json()[0]["output"]["y"] == "a\ufffdb"


def test_a_scripts_error_with_a_surrogate_is_stored_and_the_store_keeps_working(
    api: Api, tmp_path: Path
) -> None:
    (tmp_path / "boom.py").write_text(
        "def transform(record):\n    raise ValueError('bad \\ud800 input')\n"
    )
    (tmp_path / "boom.yaml").write_text(
        "name: boom\nworkflow:\n  - {name: b, type: transform, script: boom.py, run_in: inline}\n"
    )
    assert api.post("admin", "/v1/workflows", json.dumps({"path": str(tmp_path / "boom.yaml")}))
    ids = []
    for n in range(2):  # the second run shows the first did not jam the store's writes
        run = api.post("admin", "/v1/workflows/boom/runs", json.dumps({"input": {"n": n}}))
        assert run.status_code == 202, run.text
        ids.append(run.json()["run_id"])
    for run_id in ids:
        done = wait_for(
            lambda run_id=run_id: api.get("admin", f"/v1/runs/{run_id}").json(),
            lambda r: r.get("status") == "failed",
        )
        assert "bad \ufffd input" in done["error"]
    assert api.get("viewer", "/v1/runs").status_code == 200


def plant(store: str, run_id: str, workflow: str) -> None:
    """A run and a review holding lone surrogates, written as an older server (or another
    writer) could have written them: JSON with ``\\ud800`` escapes."""
    writer = SqlStore(store)
    try:
        writer.record_queued(run_id, workflow, "v0", {"x": "\ud800", "\udc00": "k"})
        with writer.engine.begin() as conn:
            conn.execute(
                schema.runs.update()
                .where(schema.runs.c.run_id == run_id)
                .values(status="waiting_review", output=json.dumps({"y": "\udfff"}))
            )
            conn.execute(
                schema.reviews.insert().values(
                    review_id=f"{run_id}:check",
                    run_id=run_id,
                    step="check",
                    workflow=workflow,
                    status="pending",
                    reason="planted",
                    input=json.dumps({"x": "\ud800"}),
                    output=json.dumps({"y": "\ud800"}),
                    created=0.0,
                )
            )
    finally:
        writer.close()


def test_listings_and_runs_show_survive_a_surrogate_already_in_the_store(
    api: Api, tmp_path: Path
) -> None:
    plant(api.store, "plantedrun", "reviewed")
    runs = api.get("admin", "/v1/runs", limit=1000)
    assert runs.status_code == 200
    [planted] = [r for r in runs.json() if r["run_id"] == "plantedrun"]
    assert planted["input"] == {"x": "\ufffd", "\ufffd": "k"}
    assert planted["output"] == {"y": "\ufffd"}
    assert api.get("viewer", "/v1/runs/plantedrun").status_code == 200
    reviews = api.get("viewer", "/v1/reviews")
    assert reviews.status_code == 200
    assert [r["output"] for r in reviews.json() if r["run_id"] == "plantedrun"] == [{"y": "\ufffd"}]
    api.client.cookies.set("relayflow_token", api.tokens["reviewer"])
    page = api.client.get("/reviews/plantedrun:check")
    assert page.status_code == 200 and "\ufffd" in page.text

    shown = subprocess.run(
        [sys.executable, "-m", "relayflow", "runs", "show", "plantedrun", "--store", api.store],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path), "COLUMNS": "200"},
        cwd=tmp_path,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "UnicodeEncodeError" not in shown.stdout + shown.stderr
    assert '"y": "\ufffd"' in shown.stdout
