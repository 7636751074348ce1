"""``Idempotency-Key`` on run and batch submissions: a retry never makes a duplicate, another
body under the same key is a 409, keys are per token and workflow and survive a restart."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from relayflow.server.app import create_app
from tests.server.conftest import make_tokens
from tests.server.helpers import write_workflows


@contextmanager
def app_on(folder: Path, store: str) -> Iterator[TestClient]:
    app = create_app(store, workers=2, workflow_roots=[folder], workflows_dir=folder / "kept")
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


class Api:
    def __init__(self, client: TestClient, tokens: dict[str, str]) -> None:
        self.client, self.tokens = client, tokens

    def post(self, who: str, url: str, body: dict[str, Any], key: str | bytes | None = None) -> Any:
        # a key may be bytes that are not UTF-8: httpx sends them as they are
        headers: dict[str, Any] = {"Authorization": f"Bearer {self.tokens[who]}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.client.post(url, json=body, headers=headers)

    def runs(self) -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.tokens['admin']}"}
        runs: list[dict[str, Any]] = self.client.get(
            "/v1/runs", params={"limit": 1000}, headers=headers
        ).json()
        return runs


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_workflows(tmp_path)
    return tmp_path


@pytest.fixture
def tokens(folder: Path, store_url: str) -> dict[str, str]:
    tokens = make_tokens(store_url)
    with app_on(folder, store_url) as client:
        api = Api(client, tokens)
        for name in ("slow", "reviewed"):
            registered = api.post("admin", "/v1/workflows", {"path": str(folder / f"{name}.yaml")})
            assert registered.status_code == 201
    return tokens


@pytest.fixture
def api(folder: Path, store_url: str, tokens: dict[str, str]) -> Iterator[Api]:
    with app_on(folder, store_url) as client:
        yield Api(client, tokens)


def test_a_retry_with_the_same_key_and_body_gets_the_same_run(api: Api) -> None:
    url, body = "/v1/workflows/slow/runs", {"input": {"n": 1}, "item_key": "a"}
    first = api.post("operator", url, body, key="k-1")
    again = api.post("operator", url, {"item_key": "a", "input": {"n": 1}}, key="k-1")
    assert first.status_code == 202 and "idempotent-replayed" not in first.headers
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["run_id"] == first.json()["run_id"]
    assert [r["run_id"] for r in api.runs()] == [first.json()["run_id"]]
    unkeyed = [api.post("operator", url, body) for _ in range(2)]
    assert {r.status_code for r in unkeyed} == {202}
    assert len(api.runs()) == 3  # without a key each request is a new run


def test_the_same_key_with_another_body_is_a_conflict(api: Api) -> None:
    url = "/v1/workflows/slow/runs"
    assert api.post("operator", url, {"input": {"n": 1}}, key="k").status_code == 202
    other = api.post("operator", url, {"input": {"n": 2}}, key="k")
    assert other.status_code == 409
    assert (
        "Idempotency-Key 'k' was used for a run of workflow 'slow' with another body"
        in (other.json()["error"])
    )
    batch = api.post("operator", "/v1/workflows/slow/batches", {"inputs": [{"n": 1}]}, key="k")
    assert batch.status_code == 409
    assert len(api.runs()) == 1


def test_keys_are_scoped_per_token_and_workflow(api: Api) -> None:
    body = {"input": {"review": False}}
    ids = {
        api.post(who, f"/v1/workflows/{name}/runs", body, key="same").json()["run_id"]
        for who, name in (("operator", "slow"), ("operator", "reviewed"), ("admin", "slow"))
    }
    assert len(ids) == 3


def test_a_batch_retry_gets_the_same_batch_and_runs(api: Api) -> None:
    url, body = "/v1/workflows/slow/batches", {"inputs": [{"n": i} for i in range(3)]}
    first = api.post("operator", url, body, key="batch-1")
    again = api.post("operator", url, body, key="batch-1")
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["batch_id"] == first.json()["batch_id"]
    assert [r["run_id"] for r in again.json()["runs"]] == [
        r["run_id"] for r in first.json()["runs"]
    ]
    assert len(api.runs()) == 3
    changed = api.post("operator", url, {"inputs": [{"n": 9}]}, key="batch-1")
    assert changed.status_code == 409


def test_keys_survive_a_restart(folder: Path, store_url: str, tokens: dict[str, str]) -> None:
    url, body = "/v1/workflows/slow/runs", {"input": {"n": 1}}
    with app_on(folder, store_url) as client:
        first = Api(client, tokens).post("operator", url, body, key="durable")
    with app_on(folder, store_url) as client:
        api = Api(client, tokens)
        again = api.post("operator", url, body, key="durable")
        assert again.status_code == 200 and again.json()["run_id"] == first.json()["run_id"]
        assert len(api.runs()) == 1


@pytest.mark.parametrize("key", ["", "has space", "x" * 201, "ünï".encode("latin-1")])
def test_a_malformed_key_is_a_422(api: Api, key: str | bytes) -> None:
    answer = api.post("operator", "/v1/workflows/slow/runs", {"input": {}}, key=key)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert api.runs() == []


def test_the_header_is_documented_in_the_openapi_schema(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    for path in ("/v1/workflows/{name}/runs", "/v1/workflows/{name}/batches"):
        operation = schema["paths"][path]["post"]
        [header] = [p for p in operation["parameters"] if p["in"] == "header"]
        assert header["name"] == "Idempotency-Key" and "retry" in header["description"]
        assert {"200", "202", "409"} <= set(operation["responses"])
