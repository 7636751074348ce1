"""Fraud-like synthetic data for the feedback-loop tests: two features in [0, 1], a label that
follows ``x1 > 0.5`` (concept "a") or its opposite (concept "b", the labels flipped), a small
decision tree trained on concept a, and a workflow that scores items with it."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Literal

Concept = Literal["a", "b"]

WORKFLOW = """
name: synthetic_fraud
models:
  fraud:
    provider: sklearn
    model: model/fraud.joblib
    params:
      features: [x1, x2]
workflow:
  - name: Score
    type: inference
    model: fraud
    features: [x1, x2]
    output: label
    output_field: prediction
  - name: Feedback
    type: retrain
    trigger: {trigger}
    target: fraud
    metric: f1
    threshold: 0.85
{extra}
evaluate:
  metric: f1
  prediction: prediction
  reference: expected
{golden}
"""


def label(x1: float, concept: Concept) -> str:
    phishing = x1 > 0.5
    return "phishing" if phishing == (concept == "a") else "legit"


def items(count: int, concept: Concept, *, seed: int, prefix: str = "") -> list[dict[str, Any]]:
    """``count`` items of ``concept``; x1 stays clear of the boundary so a tree learns it."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        x1 = rng.choice([rng.uniform(0.0, 0.4), rng.uniform(0.6, 1.0)])
        x2 = rng.uniform(0.0, 1.0)
        out.append(
            {
                "id": f"{prefix or concept}{seed}-{i}",
                "x1": round(x1, 4),
                "x2": round(x2, 4),
                "expected": label(x1, concept),
            }
        )
    return out


def train(path: Path, concept: Concept = "a", *, seed: int = 0) -> Any:
    """A depth-2 decision tree fitted on 200 items of ``concept``, saved with joblib."""
    import joblib
    from sklearn.tree import DecisionTreeClassifier

    rows = items(200, concept, seed=seed)
    model = DecisionTreeClassifier(max_depth=2, random_state=0)
    model.fit([[r["x1"], r["x2"]] for r in rows], [r["expected"] for r in rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    return model


def project(
    folder: Path,
    *,
    trigger: str = "performance_drop",
    golden: list[dict[str, Any]] | None = None,
    extra: str = "",
) -> Path:
    """A workflow folder with its model trained on concept a; returns the YAML's path."""
    train(folder / "model" / "fraud.joblib")
    golden_line = ""
    if golden is not None:
        lines = "".join(json.dumps(g) + "\n" for g in golden)
        (folder / "golden.jsonl").write_text(lines)
        golden_line = "  golden: golden.jsonl"
    text = WORKFLOW.format(trigger=trigger, extra=extra, golden=golden_line)
    path = folder / "workflow.yaml"
    path.write_text(text)
    return path


def predict(model_file: Path, rows: list[dict[str, Any]]) -> list[str]:
    import joblib

    model = joblib.load(model_file)
    return [str(p) for p in model.predict([[r["x1"], r["x2"]] for r in rows])]


def run_items(workflow: Path, store: str, rows: list[dict[str, Any]]) -> list[Any]:
    """Run each item through the workflow in order (one run at a time) with ``store``."""
    import asyncio

    import relayflow

    loaded = relayflow.load_workflow(workflow)

    async def scenario() -> list[Any]:
        async with relayflow.Runner(loaded, store=store) as runner:
            return [await runner.run(row, item_key=str(row["id"])) for row in rows]

    return asyncio.run(scenario())
