"""SklearnProvider on a small LogisticRegression trained and saved in the test."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from relayflow.errors import ProviderError
from relayflow.providers.base import CompletionRequest
from relayflow.providers.registry import file_version
from relayflow.providers.sklearn_model import SklearnProvider

np = pytest.importorskip("numpy", reason="numpy (extra: sklearn) is missing")
joblib = pytest.importorskip("joblib", reason="joblib (extra: sklearn) is missing")
linear_model = pytest.importorskip("sklearn.linear_model", reason="extra: sklearn is missing")


def fraud_model(tmp_path: Path, named: bool = False) -> Path:
    """Fraud when the amount is large and the account is new: two features, two classes."""
    rng = np.random.default_rng(0)
    amount = rng.uniform(0, 1000, 200)
    age_days = rng.uniform(0, 400, 200)
    y = np.where((amount > 600) & (age_days < 100), "fraud", "ok")
    model = linear_model.LogisticRegression(max_iter=1000)
    model.fit(np.column_stack([amount / 1000, age_days / 400]), y)
    if named:
        # what fitting on a DataFrame leaves behind, without needing pandas here
        model.feature_names_in_ = np.array(["amount", "age"], dtype=object)
    path = tmp_path / "fraud.joblib"
    joblib.dump(model, path)
    return path


def predict(prov: SklearnProvider, features: dict[str, Any]) -> Any:
    return asyncio.run(prov.predict(features))


def test_predicts_label_and_probabilities(tmp_path: Path) -> None:
    path = fraud_model(tmp_path)
    prov = SklearnProvider("fraud", path, version=file_version(path), features=["amount", "age"])
    risky = predict(prov, {"amount": 0.95, "age": 0.02, "note": "ignored"})
    safe = predict(prov, {"amount": 0.05, "age": 0.9})
    assert risky.label == "fraud" and isinstance(risky.label, str)
    assert safe.label == "ok"
    assert set(risky.probabilities) == {"fraud", "ok"}
    assert sum(risky.probabilities.values()) == pytest.approx(1.0)
    assert risky.confidence == max(risky.probabilities.values())
    assert risky.probabilities["fraud"] > 0.5 > safe.probabilities["fraud"]
    assert risky.model == prov.version and prov.version.startswith("fraud.joblib@")


def test_feature_names_of_the_model_set_the_column_order(tmp_path: Path) -> None:
    path = fraud_model(tmp_path, named=True)
    prov = SklearnProvider("fraud", path, version="v1", features=["age", "amount"])
    # the model's own names win over params.features, so this is amount=0.95, age=0.02
    assert predict(prov, {"age": 0.02, "amount": 0.95}).label == "fraud"


def test_the_steps_feature_order_when_nothing_names_the_columns(tmp_path: Path) -> None:
    path = fraud_model(tmp_path)
    prov = SklearnProvider("fraud", path, version="v1")
    # the model was fitted on [amount, age]; the record arrives in the step's feature order
    assert predict(prov, {"a_amount": 0.95, "b_age": 0.02}).label == "fraud"
    assert predict(prov, {"a_amount": 0.02, "b_age": 0.95}).label != "fraud"


def test_a_missing_feature_is_named(tmp_path: Path) -> None:
    path = fraud_model(tmp_path, named=True)
    prov = SklearnProvider("fraud", path, version="v1")
    with pytest.raises(ProviderError, match=r"\['age'\].*expects \['amount', 'age'\]"):
        predict(prov, {"amount": 0.5})


def test_a_file_that_is_no_model_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.joblib"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ProviderError, match="could not load"):
        predict(SklearnProvider("m", bad, version="v"), {"a": 1})
    joblib.dump({"weights": [1, 2]}, tmp_path / "dict.joblib")
    with pytest.raises(ProviderError, match="not an estimator"):
        predict(SklearnProvider("m", tmp_path / "dict.joblib", version="v"), {"a": 1})


def test_complete_is_refused(tmp_path: Path) -> None:
    prov = SklearnProvider("m", fraud_model(tmp_path), version="v")
    with pytest.raises(ProviderError, match="cannot answer prompts"):
        asyncio.run(prov.complete(CompletionRequest("hi")))
