"""Runs survive the server: kill it (SIGKILL) while runs are queued and running, start a new
one on the same store, and every run ends; a run parked for review stays parked."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from tests.server.conftest import make_tokens
from tests.server.helpers import Server, client, wait_for, write_workflows


def test_queued_and_running_runs_finish_after_a_kill_and_restart(tmp_path: Path) -> None:
    files = write_workflows(tmp_path)
    store = str(tmp_path / "runs.db")
    tokens = make_tokens(store)
    first = Server(store, tmp_path, workers=2)
    try:
        with client(first, tokens["admin"]) as c:
            for file in files.values():
                assert c.post("/v1/workflows", json={"path": str(file)}).status_code == 201
            parked = c.post("/v1/workflows/reviewed/runs", json={"input": {"review": 1}})
            parked_id = parked.json()["run_id"]
            wait_for(
                lambda: c.get(f"/v1/runs/{parked_id}").json()["status"],
                lambda s: s == "waiting_review",
            )
        with client(first, tokens["operator"]) as ops:
            ids = [
                ops.post("/v1/workflows/slow/runs", json={"input": {"sleep": 3, "i": i}}).json()[
                    "run_id"
                ]
                for i in range(5)
            ]

            def statuses() -> list[str]:
                return [ops.get(f"/v1/runs/{i}").json()["status"] for i in ids]

            before = wait_for(statuses, lambda s: s.count("running") == 2)
        assert before.count("queued") == 3
    finally:
        first.kill()

    second = Server(store, tmp_path, workers=4)
    try:
        with client(second, tokens["admin"]) as c:

            def runs() -> list[dict[str, Any]]:
                return [c.get(f"/v1/runs/{i}").json() for i in ids]

            done = wait_for(runs, lambda rs: all(r["status"] == "succeeded" for r in rs))
            assert sorted(r["output"]["i"] for r in done) == [0, 1, 2, 3, 4]
            assert all(r["output"]["slept"] for r in done)
            assert [s["step"] for s in done[0]["steps"]] == ["nap", "prep"]
            assert c.get(f"/v1/runs/{parked_id}").json()["status"] == "waiting_review"
            decided = c.post(f"/v1/reviews/{parked_id}:check/approve")
            assert decided.status_code == 200
            wait_for(
                lambda: c.get(f"/v1/runs/{parked_id}").json()["status"],
                lambda s: s == "succeeded",
            )
    finally:
        second.stop()


def test_a_graceful_stop_leaves_running_runs_to_the_next_server(tmp_path: Path) -> None:
    files = write_workflows(tmp_path)
    store = str(tmp_path / "runs.db")
    tokens = make_tokens(store)
    first = Server(store, tmp_path, workers=1)
    try:
        with client(first, tokens["admin"]) as c:
            assert c.post("/v1/workflows", json={"path": str(files["slow"])}).status_code == 201
            run_id = c.post("/v1/workflows/slow/runs", json={"input": {"sleep": 3}}).json()[
                "run_id"
            ]
            wait_for(lambda: c.get(f"/v1/runs/{run_id}").json()["status"], lambda s: s == "running")
    finally:
        first.stop()  # SIGTERM: not a cancellation of the run
    second = Server(store, tmp_path, workers=1)
    try:
        with client(second, tokens["admin"]) as c:
            assert c.get(f"/v1/runs/{run_id}").json()["status"] in ("running", "succeeded")
            done = wait_for(
                lambda: c.get(f"/v1/runs/{run_id}").json(), lambda r: r["status"] == "succeeded"
            )
            assert done["output"]["slept"] is True
    finally:
        second.stop()


def test_sigterm_mid_run_keeps_the_running_and_queued_runs_for_the_next_server(
    tmp_path: Path,
) -> None:
    from relayflow.store.sql_store import SqlStore

    files = write_workflows(tmp_path)
    store = str(tmp_path / "runs.db")
    tokens = make_tokens(store)
    first = Server(store, tmp_path, workers=1, extra=("--log-level", "info"))
    try:
        with client(first, tokens["admin"]) as c:
            assert c.post("/v1/workflows", json={"path": str(files["slow"])}).status_code == 201
            ids = [
                c.post("/v1/workflows/slow/runs", json={"input": {"sleep": 2, "i": i}}).json()[
                    "run_id"
                ]
                for i in range(3)
            ]
            wait_for(
                lambda: [c.get(f"/v1/runs/{i}").json()["status"] for i in ids],
                lambda s: s == ["running", "queued", "queued"],
            )
    finally:
        first.stop()  # SIGTERM, as a service manager or `docker stop` sends it
    # uvicorn re-raises the signal once it has shut down: -SIGTERM, after the app's shutdown
    assert first.process.returncode in (0, -signal.SIGTERM), first.output()
    assert "Application shutdown complete." in first.output()
    assert "Traceback" not in first.output()
    reader = SqlStore(store)
    try:
        left = [r.status for r in (reader.get_run(i) for i in ids) if r is not None]
    finally:
        reader.close()
    assert left == ["running", "queued", "queued"]  # nothing recorded as cancelled or lost
    second = Server(store, tmp_path, workers=2)
    try:
        with client(second, tokens["admin"]) as c:
            done = wait_for(
                lambda: [c.get(f"/v1/runs/{i}").json() for i in ids],
                lambda rs: all(r["status"] == "succeeded" for r in rs),
            )
        assert [r["output"]["i"] for r in done] == [0, 1, 2]
        assert all([s["step"] for s in r["steps"]] == ["nap", "prep"] for r in done)
    finally:
        second.stop()
