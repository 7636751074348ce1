"""Who reads ``/metrics`` (workflow names and counts of every workflow): by default a token with
a grant on ``*``; ``--metrics public`` anyone, ``--metrics off`` no one."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from fastapi.testclient import TestClient

from relayflow.server.app import create_app
from tests.server.helpers import make_token

Mode = Literal["token", "public", "off"]


def statuses(tmp_path: Path, mode: Mode) -> dict[str, int]:
    store = str(tmp_path / "runs.db")
    secrets = {
        "all": make_token(store, "scraper", "*=viewer"),
        "scoped": make_token(store, "team", "support=admin"),
    }
    app = create_app(store, workers=1, metrics=mode)
    out = {}
    with TestClient(app, raise_server_exceptions=False) as client:
        out["anonymous"] = client.get("/metrics").status_code
        out["forged"] = client.get(
            "/metrics", headers={"Authorization": "Bearer rf_x_y"}
        ).status_code
        for who, secret in secrets.items():
            out[who] = client.get(
                "/metrics", headers={"Authorization": f"Bearer {secret}"}
            ).status_code
        out["health"] = client.get("/v1/health").status_code
    return out


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("token", {"anonymous": 401, "forged": 401, "all": 200, "scoped": 403}),
        ("public", {"anonymous": 200, "forged": 200, "all": 200, "scoped": 200}),
        ("off", {"anonymous": 404, "forged": 404, "all": 404, "scoped": 404}),
    ],
)
def test_metrics_need_a_token_on_every_workflow_unless_configured(
    tmp_path: Path, mode: Mode, expected: dict[str, int]
) -> None:
    assert statuses(tmp_path, mode) == {**expected, "health": 200}


def test_the_default_is_behind_a_token(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    with TestClient(create_app(store, workers=1)) as client:
        assert client.get("/metrics").status_code == 401
