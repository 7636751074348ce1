"""Property: whatever JSON (or not-JSON) body reaches any POST or PUT route of the /v1 API,
with a valid token, a viewer's, a garbage one or none, the server answers without a 500 and
without a traceback. A real app on a temporary SQLite store, in process (TestClient)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from relayflow.server.app import create_app
from tests.server.helpers import make_token, wait_for

ECHO = "def transform(record):\n    return dict(record)\n"
WORKFLOWS = {
    "echo": (
        "name: echo\nworkflow:\n  - {name: e, type: transform, script: echo.py, run_in: inline}\n"
    ),
    "parked": (
        "name: parked\nworkflow:\n"
        "  - {name: e, type: transform, script: echo.py, run_in: inline}\n"
        "  - {name: check, type: human_review, when: 'true'}\n"
    ),
}
EXAMPLES = 500
#: the statuses the examples got: the last test checks they reached real work, not only 4xx
SEEN: set[int] = set()

#: every character, lone surrogates and controls included
characters = st.characters(codec=None, categories=None, exclude_categories=())
text = st.text(characters, max_size=40)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | text
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
objects = st.dictionaries(text, json_values, max_size=4)
#: bodies shaped like the API's own, with any values in them, beside any JSON at all
#: plain inputs a workflow accepts, so that submissions also get through to real work
plain = st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3)
#: a body each route accepts, drawn for half the examples of that route
VALID: dict[str, st.SearchStrategy[Any]] = {
    "/v1/workflows/{name}/runs": st.fixed_dictionaries({"input": plain}),
    "/v1/workflows/{name}/batches": st.fixed_dictionaries(
        {"inputs": st.lists(plain, min_size=1, max_size=3)}
    ),
    "/v1/reviews/{review_id}/correct": st.fixed_dictionaries({"output": plain}),
    "/v1/feedback": st.fixed_dictionaries({"workflow": st.just("echo"), "label": plain}),
    "/v1/workflows": st.fixed_dictionaries(
        {"name": st.just("fz"), "yaml": st.just(WORKFLOWS["echo"].replace("echo", "fz", 1))},
        optional={"files": st.dictionaries(text, text, max_size=2)},
    ),
}
shaped = st.one_of(
    st.fixed_dictionaries({"input": json_values}, optional={"version": json_values}),
    st.fixed_dictionaries({"input": objects}, optional={"item_key": text, "version": text}),
    st.fixed_dictionaries({"inputs": st.lists(objects, max_size=3)}),
    st.fixed_dictionaries({"inputs": json_values}),
    st.fixed_dictionaries({"output": json_values}),
    st.fixed_dictionaries({"output": objects}),
    st.fixed_dictionaries(
        {"workflow": st.sampled_from(["echo", "parked"]) | text, "label": json_values},
        optional={"run_id": text, "step": text, "item_key": text},
    ),
    st.fixed_dictionaries(
        {"name": st.sampled_from(["echo", "fz"]) | text, "yaml": text},
        optional={"files": st.dictionaries(text, text | st.fixed_dictionaries({"base64": text}))},
    ),
    st.fixed_dictionaries({"path": text | st.sampled_from(["/dev/zero", "/etc/passwd", "."])}),
    st.fixed_dictionaries({"name": text, "path": text, "yaml": json_values}),
)
raw = st.binary(max_size=64)


class Site:
    def __init__(
        self, app: FastAPI, client: TestClient, tokens: dict[str, str], ids: dict[str, str]
    ) -> None:
        self.client, self.tokens, self.ids = client, tokens, ids
        # from the OpenAPI schema: every documented operation, however the routers nest
        self.routes = sorted(
            (method.upper(), path)
            for path, operations in app.openapi()["paths"].items()
            if path.startswith("/v1")
            for method in operations
            if method in ("post", "put")
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "echo.py").write_text(ECHO)
    for name, yaml in WORKFLOWS.items():
        (folder / f"{name}.yaml").write_text(yaml)
    store = str(folder / "runs.db")
    tokens = {
        "admin": make_token(store, "root", "*=admin"),
        "viewer": make_token(store, "view", "echo=viewer", "parked=viewer"),
    }
    app = create_app(store, workers=2, workflow_roots=[folder], workflows_dir=folder / "kept")
    with TestClient(app, raise_server_exceptions=False) as client:
        auth = {"Authorization": f"Bearer {tokens['admin']}"}
        for name in WORKFLOWS:
            path = str(folder / f"{name}.yaml")
            answer = client.post("/v1/workflows", json={"path": path}, headers=auth)
            assert answer.status_code == 201, answer.text
        run = client.post("/v1/workflows/parked/runs", json={"input": {}}, headers=auth).json()
        wait_for(
            lambda: client.get(f"/v1/runs/{run['run_id']}", headers=auth).json()["status"],
            lambda s: s == "waiting_review",
        )
        ids = {"run_id": run["run_id"], "review_id": f"{run['run_id']}:check"}
        yield Site(app, client, tokens, ids)


def _url(site: Site, path: str, name: str, pick_real: bool, junk: str) -> str:
    values = {
        "name": name,
        "run_id": site.ids["run_id"] if pick_real else junk,
        "review_id": site.ids["review_id"] if pick_real else junk,
    }
    for key, value in values.items():
        path = path.replace("{" + key + "}", value)
    return path


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.data(),
    valid=st.booleans(),
    who=st.sampled_from(["admin", "admin", "viewer", "garbage", "none"]),
    garbage=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
    name=st.sampled_from(["echo", "echo", "parked", "nosuch"]),
    pick_real=st.booleans(),
    junk=st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=20),
)
def test_no_body_and_no_token_makes_a_server_error(
    site: Site,
    data: st.DataObject,
    valid: bool,
    who: str,
    garbage: str,
    name: str,
    pick_real: bool,
    junk: str,
) -> None:
    method, path = data.draw(st.sampled_from(site.routes))
    if valid and path in VALID:
        body = json.dumps(data.draw(VALID[path])).encode()
    else:
        body = data.draw(st.one_of(shaped, json_values).map(lambda v: json.dumps(v).encode()) | raw)
    headers: dict[str, Any] = {"content-type": "application/json"}
    if who in site.tokens:
        headers["Authorization"] = f"Bearer {site.tokens[who]}"
    elif who == "garbage":
        headers["Authorization"] = f"Bearer {garbage}"
    url = _url(site, path, name, pick_real, junk)
    response = site.client.request(method, url, content=body, headers=headers)
    event(f"{response.status_code}")  # --hypothesis-show-statistics: what the bodies reached
    SEEN.add(response.status_code)
    assert response.status_code < 500, (method, url, body[:300], response.text[:500])
    assert "Traceback" not in response.text
    assert 'File "' not in response.text


def test_the_fuzzed_bodies_reached_real_work(site: Site) -> None:
    if not SEEN:
        pytest.skip("runs after the property test")
    assert {200, 201, 202, 401, 403, 404, 422} <= SEEN, SEEN


def test_the_fuzzed_routes_are_every_post_of_the_api(site: Site) -> None:
    paths = {path for _, path in site.routes}
    assert {
        "/v1/workflows",
        "/v1/workflows/{name}/runs",
        "/v1/workflows/{name}/batches",
        "/v1/feedback",
        "/v1/runs/{run_id}/cancel",
        "/v1/runs/{run_id}/resume",
        "/v1/reviews/{review_id}/correct",
        "/v1/reviews/{review_id}/approve",
    } <= paths
