"""Access control and bad requests through a real uvicorn: 401/403 with recorded denials,
redaction of sensitive agents' outputs, and clear 4xx errors that leave the store intact."""

from __future__ import annotations

from typing import Any

import httpx

from tests.server.conftest import Site
from tests.server.helpers import sse_events, wait_for


def parked_run(site: Site) -> str:
    with site.as_("operator") as ops:
        run_id: str = ops.post(
            "/v1/workflows/reviewed/runs", json={"input": {"review": True}}
        ).json()["run_id"]
    with site.as_("admin") as c:
        wait_for(
            lambda: c.get(f"/v1/runs/{run_id}").json()["status"], lambda s: s == "waiting_review"
        )
    return run_id


def denials(site: Site) -> list[dict[str, Any]]:
    with site.as_("admin") as c:
        rows: list[dict[str, Any]] = c.get("/v1/denials").json()
        return rows


def test_no_token_and_an_unknown_token_are_401(site: Site) -> None:
    anonymous = httpx.get(f"{site.server.url}/v1/runs")
    assert anonymous.status_code == 401
    assert "Authorization: Bearer" in anonymous.json()["error"]
    assert anonymous.headers["www-authenticate"] == "Bearer"
    forged = httpx.get(
        f"{site.server.url}/v1/runs", headers={"Authorization": "Bearer rf_abc_notreal"}
    )
    assert forged.status_code == 401
    assert forged.json()["error"] == "invalid or revoked API token"
    assert any(d["action"] == "authenticate" for d in denials(site))


def test_the_token_cookie_works_like_the_header(site: Site) -> None:
    response = httpx.get(
        f"{site.server.url}/v1/me", cookies={"relayflow_token": site.tokens["reviewer"]}
    )
    assert response.status_code == 200
    assert response.json()["name"] == "rev"


def test_each_role_may_do_only_its_own_actions_and_every_denial_is_recorded(site: Site) -> None:
    with site.as_("viewer") as viewer:
        submit = viewer.post("/v1/workflows/reviewed/runs", json={"input": {}})
    assert submit.status_code == 403
    body = submit.json()
    assert body["error"] == "access denied"
    assert "may not submit on workflow 'reviewed'" in body["detail"]
    assert "needs role operator or admin" in body["detail"]

    run_id = parked_run(site)
    with site.as_("operator") as ops:
        decide = ops.post(f"/v1/reviews/{run_id}:check/approve")
        register = ops.post("/v1/workflows", json={"path": str(site.files["slow"])})
    assert decide.status_code == 403 and "reviewer or admin" in decide.json()["detail"]
    assert register.status_code == 403
    with site.as_("reviewer") as rev:
        assert rev.post(f"/v1/runs/{run_id}/cancel").status_code == 403
        assert rev.get("/v1/denials").status_code == 403
    with site.as_("other") as other:
        assert other.get(f"/v1/runs/{run_id}").status_code == 403
        assert other.get("/v1/workflows").json() == []
        assert [r for r in other.get("/v1/runs").json() if r["run_id"] == run_id] == []

    recorded = {(d["token_name"], d["action"], d["workflow"]) for d in denials(site)}
    assert {
        ("view", "submit", "reviewed"),
        ("ops", "review", "reviewed"),
        ("ops", "register", None),  # refused before the file (and the name in it) is read
        ("rev", "cancel", "reviewed"),
        ("rev", "audit", None),
        ("stranger", "read", "reviewed"),
    } <= recorded
    with site.as_("reviewer") as rev:
        assert rev.post(f"/v1/reviews/{run_id}:check/approve").status_code == 200


def test_a_sensitive_agents_output_is_hidden_from_tokens_without_the_right(site: Site) -> None:
    run_id = parked_run(site)

    def view(who: str) -> dict[str, Any]:
        with site.as_(who) as c:
            body: dict[str, Any] = c.get(f"/v1/runs/{run_id}").json()
            return body

    for who in ("admin", "sensitive"):
        steps = {s["step"]: s for s in view(who)["steps"]}
        assert steps["secret"]["output"]["ssn"] == "123-45-1"
        assert not steps["secret"]["redacted"]
    steps = {s["step"]: s for s in view("viewer")["steps"]}
    assert steps["secret"]["redacted"]
    assert "123-45-1" not in str(steps["secret"]["output"])
    assert steps["check"]["output"]["ssn"] == "[redacted]"  # the field travelled on
    assert steps["prep"]["output"] == {"review": True, "n": 1}  # others are untouched
    with site.as_("viewer") as viewer:
        review = viewer.get(f"/v1/reviews/{run_id}:check").json()
        assert review["output"]["ssn"] == "[redacted]" and review["redacted"]
        with viewer.stream("GET", f"/v1/runs/{run_id}/events") as stream:
            events: list[tuple[str, dict[str, Any]]] = []
            for name, data in sse_events(stream):
                events.append((name, data))
                if name == "run_finished":
                    break
                if name == "step_escalated":
                    with site.as_("reviewer") as rev:
                        rev.post(f"/v1/reviews/{run_id}:check/approve")
    assert "123-45-1" not in str(events)
    finished = [d for n, d in events if n == "run_finished"]
    assert finished and finished[0]["output"]["ssn"] == "[redacted]"
    assert view("admin")["output"]["ssn"] == "123-45-1"
    assert view("viewer")["output"]["ssn"] == "[redacted]"


def _counts(site: Site) -> tuple[int, int]:
    with site.as_("admin") as c:
        runs = len(c.get("/v1/runs", params={"limit": 1000}).json())
        versions = sum(len(w["versions"]) for w in c.get("/v1/workflows").json())
    return runs, versions


def test_bad_requests_get_clear_4xx_errors_and_change_nothing(site: Site) -> None:
    before = _counts(site)
    with site.as_("admin") as c:
        malformed = c.post(
            "/v1/workflows/reviewed/runs",
            content=b'{"input": {',
            headers={"content-type": "application/json"},
        )
        assert malformed.status_code == 400
        assert malformed.json()["error"] == "malformed JSON"
        unknown = c.post("/v1/workflows/nosuch/runs", json={"input": {}})
        assert unknown.status_code == 404
        assert "no workflow 'nosuch'" in unknown.json()["error"]
        assert c.get("/v1/runs/nosuchrun").status_code == 404
        assert c.get("/v1/reviews/nosuch:step").status_code == 404
        wrong_shape = c.post("/v1/workflows/reviewed/runs", json={"input": [1, 2]})
        assert wrong_shape.status_code == 422
        assert wrong_shape.json()["detail"][0]["loc"] == ["body", "input"]
        extra = c.post("/v1/workflows/reviewed/runs", json={"input": {}, "colour": "red"})
        assert extra.status_code == 422
        oversized = c.post(
            "/v1/workflows/reviewed/runs", json={"input": {"text": "x" * (128 * 1024)}}
        )
        assert oversized.status_code == 413
        assert oversized.json()["error"] == "request body too large"
        broken = c.post(
            "/v1/workflows",
            json={"name": "broken", "yaml": "workflow:\n  - name: a\n    type: transform\n"},
        )
        assert broken.status_code == 422
        assert broken.json()["detail"] == [
            "broken.yaml:2: a.script: required field is missing — add `script: …`"
        ]
        both = c.post("/v1/workflows", json={"name": "x", "yaml": "a", "path": "b"})
        assert both.status_code == 422
        missing = c.post("/v1/workflows", json={"path": str(site.folder / "absent.yaml")})
        assert missing.status_code == 422 and "file not found" in missing.json()["detail"][0]
        batch = c.post("/v1/workflows/slow/batches", json={"inputs": []})
        assert batch.status_code == 422
    assert _counts(site) == before


def test_a_body_streamed_without_length_is_cut_off_at_the_limit(site: Site) -> None:
    chunks = (b"x" * 8192 for _ in range(64))  # 512 KiB, chunked: no Content-Length
    response = httpx.post(
        f"{site.server.url}/v1/workflows/reviewed/runs",
        content=chunks,
        headers={
            "Authorization": f"Bearer {site.tokens['admin']}",
            "content-type": "application/json",
        },
    )
    assert response.status_code == 413


def test_a_revoked_token_is_refused_at_once(site: Site) -> None:
    from relayflow.govern.access import TokenStore
    from relayflow.store.sql_store import SqlStore
    from tests.server.helpers import make_token

    secret = make_token(site.store, "temp", "reviewed=viewer")
    with httpx.Client(base_url=site.server.url, headers={"Authorization": f"Bearer {secret}"}) as c:
        assert c.get("/v1/me").status_code == 200
        store = SqlStore(site.store)
        try:
            TokenStore(store.engine).revoke("temp")
        finally:
            store.close()
        assert c.get("/v1/me").status_code == 401
