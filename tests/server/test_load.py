"""A small load through a real ``relayflow serve`` (benchmarks/server_load.py's driver): 200 runs
from 10 concurrent clients while a reviewer decides the queue; every run final, none lost or
duplicated, every escalation decided once. Correctness only: the timings are the benchmark's."""

from __future__ import annotations

import asyncio
from pathlib import Path

from benchmarks.server_load import NAME, drive, escalates, fails, verify, write_workflow
from tests.server.helpers import client, make_token, serving

RUNS, CLIENTS = 200, 10


def test_concurrent_submissions_and_reviews_lose_and_duplicate_nothing(
    store_url: str, tmp_path: Path
) -> None:
    path = write_workflow(tmp_path)
    admin = make_token(store_url, "root", "*=admin")
    operator = make_token(store_url, "ops", f"{NAME}=operator")
    reviewer = make_token(store_url, "rev", f"{NAME}=reviewer")
    with serving(store_url, tmp_path, workers=4) as server:
        with client(server, admin) as c:
            assert c.post("/v1/workflows", json={"path": str(path)}).status_code == 201
        load = asyncio.run(drive(server.url, operator, reviewer, runs=RUNS, clients=CLIENTS))
    outcome = verify(store_url, load, RUNS)

    assert outcome["problems"] == []
    assert outcome["runs_in_store"] == RUNS
    failing = sum(1 for n in range(RUNS) if fails(n))
    escalated = sum(1 for n in range(RUNS) if escalates(n))
    assert failing > 0 and escalated > 0
    assert outcome["by_status"] == {"succeeded": RUNS - failing, "failed": failing}
    assert sum(load.decisions.values()) == escalated
    assert load.decisions["correct"] > 0 and load.decisions["approve"] > 0
    assert outcome["reviews"] == {
        "approved": load.decisions["approve"],
        "corrected": load.decisions["correct"],
    }
    assert sorted(n for n, _ in load.submitted) == list(range(RUNS))
