"""Train the fraud_detection example's model on river's Phishing data and save it with its card:
``python examples/fraud_detection/train_model.py`` writes model/phishing.joblib, the cascade's
small model model/phishing_small.joblib, and card.json."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import hashlib
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCE = "package://river/datasets/phishing.csv.gz"
#: rows 0-249 are held out: they are the rows a `--limit` run of the workflow scores first,
#: so what the workflow measures is never the data the model was fitted on
HOLDOUT = 250
RANDOM_STATE = 0
#: confidences whose share on the held-out rows the card records (to place the review gate)
THRESHOLDS = (0.6, 0.7, 0.8, 0.9)
_PARAMS = ("n_estimators", "learning_rate", "max_depth", "random_state")
#: the cascade's cheap first model (workflow_cascade.yaml): a logistic regression on the three
#: strongest features; pages it is less sure of than CASCADE_THRESHOLD go on to the big model
SMALL_FEATURES = ("empty_server_form_handler", "popup_window", "https")
CASCADE_THRESHOLD = 0.85
CASCADE_THRESHOLDS = (0.7, 0.8, 0.85, 0.9, 0.95)


def _features_module() -> ModuleType:
    """features.py from this folder, the same code the workflow's Features step runs."""
    spec = importlib.util.spec_from_file_location("fraud_detection_features", HERE / "features.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {HERE / 'features.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def data_path() -> Path:
    """The CSV that river ships, found without importing river (as the workflow finds it)."""
    spec = importlib.util.find_spec("river")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("river is not installed: pip install 'relayflow[examples]'")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "phishing.csv.gz"


def load_rows() -> list[dict[str, Any]]:
    """Every row of the CSV through features.transform, in file order."""
    transform = _features_module().transform
    with gzip.open(data_path(), "rt", encoding="utf-8", newline="") as fh:
        return [transform(row) for row in csv.DictReader(fh)]


def _gate(threshold: float, confidence: Any, correct: Any) -> dict[str, float]:
    """What a review gate at ``confidence < threshold`` does on the held-out rows: the share it
    sends to a person and the accuracy of the predictions it lets through."""
    passed = confidence >= threshold
    return {
        "share_to_review": round(float((~passed).mean()), 4),
        "accuracy_passed": round(float(correct[passed].mean()), 4) if passed.any() else 1.0,
    }


def _cascade(small: Any, x_small: Any, big_predicted: Any, y_test: Any) -> dict[str, Any]:
    """The small model's held-out scores, and what a cascade at each threshold does: the share
    of pages sent on to the big model and the F1 of the combined answers."""
    from sklearn.metrics import f1_score

    predicted = small.predict(x_small)
    confidence = small.predict_proba(x_small).max(axis=1)
    gates = {}
    for t in CASCADE_THRESHOLDS:
        escalated = confidence < t
        combined = [
            b if e else s for s, b, e in zip(predicted, big_predicted, escalated, strict=True)
        ]
        gates[str(t)] = {
            "share_escalated": round(float(escalated.mean()), 4),
            "f1": round(float(f1_score(y_test, combined, pos_label="phishing")), 4),
        }
    return {
        "model": "phishing_small.joblib",
        "estimator": type(small).__name__,
        "features": list(SMALL_FEATURES),
        "f1": round(float(f1_score(y_test, predicted, pos_label="phishing")), 4),
        "threshold": CASCADE_THRESHOLD,
        "gates": gates,
    }


def train(out_dir: Path | str) -> dict[str, Any]:
    """Fit on rows 250-1249, score rows 0-249, save ``phishing.joblib`` and ``card.json`` into
    ``out_dir``; return the card."""
    import joblib
    import numpy as np
    import sklearn
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    features: tuple[str, ...] = _features_module().FEATURES
    rows = load_rows()
    x = np.array([[row[name] for name in features] for row in rows])
    y = np.array([row["expected"] for row in rows])
    x_train, y_train, x_test, y_test = x[HOLDOUT:], y[HOLDOUT:], x[:HOLDOUT], y[:HOLDOUT]

    # Trees need no scaling: every feature is already in [0, 1].
    model = GradientBoostingClassifier(random_state=RANDOM_STATE)
    model.fit(x_train, y_train)

    predicted = model.predict(x_test)
    proba = model.predict_proba(x_test)
    phishing = list(model.classes_).index("phishing")
    confidence = proba.max(axis=1)
    metrics = {
        "accuracy": round(float(accuracy_score(y_test, predicted)), 4),
        "f1": round(float(f1_score(y_test, predicted, pos_label="phishing")), 4),
        "roc_auc": round(float(roc_auc_score(y_test == "phishing", proba[:, phishing])), 4),
    }
    card: dict[str, Any] = {
        "model": "phishing.joblib",
        "estimator": type(model).__name__,
        "params": {k: model.get_params()[k] for k in _PARAMS},
        "data": {
            "source": SOURCE,
            "sha256": hashlib.sha256(data_path().read_bytes()).hexdigest(),
            "description": "UCI Website Phishing, as bundled with river (river.datasets.Phishing)",
        },
        "rows": {
            "total": len(rows),
            "train": len(y_train),
            "test": len(y_test),
            "train_rows": f"{HOLDOUT}-{len(rows) - 1}",
            "test_rows": f"0-{HOLDOUT - 1}",
        },
        "features": list(features),
        "classes": [str(c) for c in model.classes_],
        "metrics": metrics,
        "review_gate": {str(t): _gate(t, confidence, predicted == y_test) for t in THRESHOLDS},
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sklearn_version": sklearn.__version__,
        "python_version": platform.python_version(),
    }

    columns = [list(features).index(name) for name in SMALL_FEATURES]
    small = LogisticRegression(max_iter=1000)
    small.fit(x_train[:, columns], y_train)
    card["cascade"] = _cascade(small, x_test[:, columns], predicted, y_test)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # write then rename: a running workflow never loads half a file
    for name, fitted in (("phishing.joblib", model), ("phishing_small.joblib", small)):
        tmp = out / f"{name}.tmp"
        joblib.dump(fitted, tmp)
        os.replace(tmp, out / name)
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=HERE / "model", help="folder for phishing.joblib and card.json"
    )
    args = parser.parse_args(argv)
    card = train(args.out)
    m = card["metrics"]
    print(
        f"trained {card['estimator']} on {card['rows']['train']} rows, "
        f"tested on {card['rows']['test']} held-out rows"
    )
    print(f"accuracy {m['accuracy']:.3f}  F1 {m['f1']:.3f}  ROC AUC {m['roc_auc']:.3f}")
    for t, gate in card["review_gate"].items():
        print(
            f"review when confidence < {t}: {gate['share_to_review']:.0%} of held-out rows to a "
            f"person, accuracy of the rest {gate['accuracy_passed']:.3f}"
        )
    cascade = card["cascade"]
    small = f"{cascade['estimator']} on {len(cascade['features'])} features"
    print(f"cascade's small model: {small}, F1 {cascade['f1']:.3f}")
    for t, gate in cascade["gates"].items():
        print(
            f"  escalate when confidence < {t}: {gate['share_escalated']:.0%} of held-out rows "
            f"to the big model, F1 {gate['f1']:.3f}"
        )
    print(
        f"saved {args.out / 'phishing.joblib'}, {args.out / 'phishing_small.joblib'} and card.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
