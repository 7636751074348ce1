"""The API through a real uvicorn: a run that waits for review, watched over SSE, decided and
finished; batches, cancel, feedback, figures, Prometheus."""

from __future__ import annotations

import threading
from typing import Any

from tests.server.conftest import Site
from tests.server.helpers import sse_events, wait_for


def run_of(site: Site, run_id: str, who: str = "admin") -> dict[str, Any]:
    with site.as_(who) as c:
        body: dict[str, Any] = c.get(f"/v1/runs/{run_id}").json()
        return body


def test_a_run_waits_for_review_streams_its_events_and_finishes_after_approval(
    site: Site,
) -> None:
    with site.as_("operator") as ops:
        response = ops.post("/v1/workflows/reviewed/runs", json={"input": {"review": True}})
    assert response.status_code == 202
    run_id = response.json()["run_id"]
    assert response.json()["status"] in ("queued", "running")

    seen: list[tuple[str, dict[str, Any]]] = []

    def watch() -> None:
        with site.as_("admin") as c, c.stream("GET", f"/v1/runs/{run_id}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for name, data in sse_events(stream):
                seen.append((name, data))

    watcher = threading.Thread(target=watch)
    watcher.start()
    wait_for(lambda: run_of(site, run_id)["status"], lambda s: s == "waiting_review")
    wait_for(lambda: [n for n, _ in seen], lambda names: "step_escalated" in names)

    with site.as_("reviewer") as rev:
        [item] = [r for r in rev.get("/v1/reviews").json() if r["run_id"] == run_id]
        assert (item["step"], item["status"]) == ("check", "pending")
        claimed = rev.post(f"/v1/reviews/{item['review_id']}/claim")
        assert claimed.json()["claimed_by"] == "rev"
        decided = rev.post(f"/v1/reviews/{item['review_id']}/approve")
    assert decided.status_code == 200
    assert decided.json()["review"]["status"] == "approved"
    assert decided.json()["review"]["reviewer"] == "rev"

    watcher.join(60)
    assert not watcher.is_alive(), "the stream did not end with the run"
    names = [n for n, _ in seen]
    assert names[0] == "run_started"
    assert names[-1] == "run_finished"
    assert seen[-1][1]["status"] == "succeeded"
    assert "review_decided" in names
    finished = [d["step"] for n, d in seen if n == "step_finished"]
    assert finished.count("after") == 1
    final = run_of(site, run_id)
    assert final["status"] == "succeeded"
    assert final["output"]["n"] == 2
    assert {s["step"]: s["actor"] for s in final["steps"]}["check"] == "human"


def test_a_finished_run_replays_its_steps_and_the_stream_ends(site: Site) -> None:
    with site.as_("operator") as ops:
        run_id = ops.post("/v1/workflows/slow/runs", json={"input": {}}).json()["run_id"]
    wait_for(lambda: run_of(site, run_id)["status"], lambda s: s == "succeeded")
    with site.as_("admin") as c, c.stream("GET", f"/v1/runs/{run_id}/events") as stream:
        events = list(sse_events(stream))
    assert [n for n, _ in events] == [
        "run_started",
        "step_finished",
        "step_finished",
        "run_finished",
    ]
    assert all(d.get("replayed") for n, d in events if n == "step_finished")


def test_correcting_a_review_replaces_the_steps_output(site: Site) -> None:
    with site.as_("operator") as ops:
        run_id = ops.post("/v1/workflows/reviewed/runs", json={"input": {"review": 1}}).json()[
            "run_id"
        ]
    wait_for(lambda: run_of(site, run_id)["status"], lambda s: s == "waiting_review")
    with site.as_("reviewer") as rev:
        decided = rev.post(
            f"/v1/reviews/{run_id}:check/correct", json={"output": {"n": 10, "fixed": True}}
        )
        assert decided.status_code == 200
        again = rev.post(f"/v1/reviews/{run_id}:check/approve")
    assert again.status_code == 409
    assert "already corrected" in again.json()["error"]
    final = wait_for(lambda: run_of(site, run_id), lambda r: r["status"] == "succeeded")
    assert final["output"] == {"n": 11, "fixed": True}
    with site.as_("admin") as c:
        labels = c.get("/v1/workflows/reviewed/feedback").json()
    assert {"n": 10, "fixed": True} in [f["label"] for f in labels if f["run_id"] == run_id]


def test_a_claimed_review_is_taken_for_other_reviewers(site: Site) -> None:
    with site.as_("operator") as ops:
        run_id = ops.post("/v1/workflows/reviewed/runs", json={"input": {"review": 1}}).json()[
            "run_id"
        ]
    wait_for(lambda: run_of(site, run_id)["status"], lambda s: s == "waiting_review")
    with site.as_("admin") as admin, site.as_("reviewer") as rev:
        assert admin.post(f"/v1/reviews/{run_id}:check/claim").status_code == 200
        assert rev.get(f"/v1/reviews/{run_id}:check").json()["claimed_by"] == "root"
        taken = rev.post(f"/v1/reviews/{run_id}:check/approve")
        assert taken.status_code == 409
        assert "claimed by root" in taken.json()["error"]
        assert admin.post(f"/v1/reviews/{run_id}:check/release").status_code == 200
        assert rev.post(f"/v1/reviews/{run_id}:check/approve").status_code == 200
    wait_for(lambda: run_of(site, run_id)["status"], lambda s: s == "succeeded")


def test_a_batch_makes_one_run_per_input_sharing_a_batch_id(site: Site) -> None:
    with site.as_("operator") as ops:
        response = ops.post(
            "/v1/workflows/slow/batches", json={"inputs": [{"n": i} for i in range(5)]}
        )
        assert response.status_code == 202
        batch = response.json()
        assert len({r["run_id"] for r in batch["runs"]}) == 5

        def listed() -> list[dict[str, Any]]:
            runs: list[dict[str, Any]] = ops.get(
                "/v1/runs", params={"batch_id": batch["batch_id"]}
            ).json()
            return runs

        runs = wait_for(listed, lambda rs: [r["status"] for r in rs] == ["succeeded"] * 5)
    assert sorted(r["output"]["n"] for r in runs) == [1, 2, 3, 4, 5]
    assert {r["batch_id"] for r in runs} == {batch["batch_id"]}


def test_cancel_stops_a_running_run(site: Site) -> None:
    with site.as_("operator") as ops:
        run_id = ops.post("/v1/workflows/slow/runs", json={"input": {"sleep": 30}}).json()["run_id"]
        wait_for(lambda: run_of(site, run_id)["status"], lambda s: s == "running")
        cancelled = ops.post(f"/v1/runs/{run_id}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert ops.post(f"/v1/runs/{run_id}/cancel").status_code == 409
    assert "prep" not in {s["step"] for s in run_of(site, run_id)["steps"]}


def test_workflow_figures_and_prometheus_count_the_runs(site: Site) -> None:
    with site.as_("operator") as ops:
        run_id = ops.post("/v1/workflows/slow/runs", json={"input": {}}).json()["run_id"]
    wait_for(lambda: run_of(site, run_id)["status"], lambda s: s == "succeeded")
    with site.as_("viewer") as viewer:
        assert viewer.get("/v1/workflows/slow/metrics").status_code == 403
    with site.as_("admin") as c:
        figures = c.get("/v1/workflows/slow/metrics").json()
        text = c.get("/metrics").text
    assert figures["by_status"]["succeeded"] >= 1
    assert figures["ttr_median"] is not None and figures["ttr_median"] >= 0
    assert [a["agent"] for a in figures["agents"]] == ["nap", "prep"]
    assert 'relayflow_runs_total{status="succeeded",workflow="slow"}' in text
    assert 'relayflow_step_seconds_bucket{agent="nap"' in text
    assert 'relayflow_steps_total{agent="prep",status="finished",workflow="slow"}' in text


def test_registering_the_same_text_twice_keeps_one_version_and_new_text_adds_one(
    site: Site,
) -> None:
    text = "workflow:\n  - {name: a, type: transform, script: %s}\n" % (site.folder / "prep.py")
    with site.as_("admin") as c:
        first = c.post("/v1/workflows", json={"name": "posted", "yaml": text})
        again = c.post("/v1/workflows", json={"name": "posted", "yaml": text})
        newer = c.post("/v1/workflows", json={"name": "posted", "yaml": text + "# v2\n"})
        assert first.status_code == again.status_code == newer.status_code == 201
        info = c.get("/v1/workflows/posted").json()
        assert info["version"] == newer.json()["version"] != first.json()["version"]
        assert {v["version"] for v in info["versions"]} == {
            first.json()["version"],
            newer.json()["version"],
        }
        run = c.post(
            "/v1/workflows/posted/runs",
            json={"input": {"n": 5}, "version": first.json()["version"]},
        ).json()
    done = wait_for(lambda: run_of(site, run["run_id"]), lambda r: r["status"] == "succeeded")
    assert done["workflow_version"] == first.json()["version"]
    assert done["output"] == {"n": 6}
