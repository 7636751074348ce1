"""Helpers of the budget tests: a small scikit-learn model priced per call, workflows that
use it under a budget, and a clock the tests move by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

import relayflow


class Clock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fraud_model(folder: Path) -> Path:
    """Fraud when the amount is large and the account is new: two features, two classes."""
    np = pytest.importorskip("numpy", reason="numpy (extra: sklearn) is missing")
    joblib = pytest.importorskip("joblib", reason="joblib (extra: sklearn) is missing")
    linear_model = pytest.importorskip("sklearn.linear_model", reason="extra: sklearn is missing")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (200, 2))
    y = np.where((x[:, 0] > 0.6) & (x[:, 1] < 0.25), "fraud", "ok")
    path = folder / "fraud.joblib"
    joblib.dump(linear_model.LogisticRegression().fit(x, y), path)
    return path


def scoring_workflow(folder: Path, limits: str, per_call: float = 0.01) -> relayflow.Workflow:
    """A workflow of one inference step on the fraud model, priced ``per_call``, under the
    budget ``limits`` (YAML flow mappings, one per line)."""
    fraud_model(folder)
    lines = "".join(f"    - {line}\n" for line in limits.strip().splitlines())
    path = folder / "workflow.yaml"
    path.write_text(
        "name: scoring\n"
        "models:\n"
        "  fraud:\n"
        "    provider: sklearn\n"
        "    model: fraud.joblib\n"
        f"    price: {{per_call: {per_call}}}\n"
        "budget:\n"
        "  limits:\n"
        f"{lines}"
        "workflow:\n"
        "  - name: Score\n"
        "    type: inference\n"
        "    model: fraud\n"
        "    features: [amount, age]\n"
        "    cache: false\n"
    )
    return relayflow.load_workflow(path)
