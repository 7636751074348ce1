"""A scikit-learn estimator saved with joblib, served as a tabular provider."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from relayflow.errors import ProviderError
from relayflow.providers.base import (
    BuildMember,
    Completion,
    CompletionRequest,
    Files,
    Prediction,
    Price,
    Provider,
    ProviderConfig,
)

_INSTALL = "pip install 'relayflow[sklearn]'"


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (so it serializes to JSON)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


class SklearnProvider:
    """Predicts one row at a time with a fitted estimator loaded (once) from ``path``.

    The row's columns are the estimator's ``feature_names_in_`` when it was fitted on named
    columns, else ``features`` (``params.features`` in the YAML), else the record's keys in
    the order the inference step's ``features:`` lists them. Loading and predicting run in a
    worker thread.
    """

    def __init__(
        self,
        name: str,
        path: Path,
        *,
        version: str,
        price: Price | None = None,
        features: Sequence[str] | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.version = version
        self.price = price or Price()
        self._features = list(features) if features else None
        self._estimator: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._estimator is None:
            try:
                import joblib
            except ImportError as exc:
                raise ProviderError(f"model {self.name!r} needs joblib: {_INSTALL}") from exc
            try:
                estimator = joblib.load(self.path)
            except Exception as exc:  # unpickling garbage raises almost anything
                raise ProviderError(
                    f"model {self.name!r}: could not load {self.path} ({exc}); "
                    "save the estimator with joblib.dump"
                ) from exc
            if not callable(getattr(estimator, "predict", None)):
                raise ProviderError(
                    f"model {self.name!r}: {self.path} holds a {type(estimator).__name__}, "
                    "not an estimator with predict(); save the fitted model itself"
                )
            self._estimator = estimator
        return self._estimator

    def _columns(self, estimator: Any, features: Mapping[str, Any]) -> list[str]:
        names = getattr(estimator, "feature_names_in_", None)
        if names is not None:
            return [str(n) for n in names]
        # the order the step lists its `features:` in (the record is built in that order)
        return self._features or list(features)

    def _predict(self, features: Mapping[str, Any]) -> Prediction:
        # one at a time: catch_warnings below swaps process-wide state
        with self._lock:
            return self._predict_locked(features)

    def _predict_locked(self, features: Mapping[str, Any]) -> Prediction:
        estimator = self._load()
        columns = self._columns(estimator, features)
        missing = [c for c in columns if c not in features]
        if missing:
            raise ProviderError(
                f"model {self.name!r} needs feature(s) {missing} that the record lacks; "
                f"it expects {columns}"
            )
        row = [[features[c] for c in columns]]
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # a model fitted on a DataFrame warns about a plain row in the same order
                warnings.filterwarnings("ignore", message="X does not have valid feature names")
                label = _plain(estimator.predict(row)[0])
                proba = (
                    estimator.predict_proba(row)[0]
                    if callable(getattr(estimator, "predict_proba", None))
                    else None
                )
        except (ValueError, TypeError, AttributeError) as exc:
            raise ProviderError(
                f"model {self.name!r} could not predict from {columns}: {exc}"
            ) from exc
        seconds = time.perf_counter() - started
        probabilities: dict[str, float] = {}
        confidence = None
        if proba is not None:
            classes = getattr(estimator, "classes_", range(len(proba)))
            probabilities = {str(_plain(c)): float(p) for c, p in zip(classes, proba, strict=True)}
            confidence = max(probabilities.values(), default=None)
        return Prediction(
            label=label,
            probabilities=probabilities,
            confidence=confidence,
            seconds=seconds,
            model=self.version,
        )

    async def predict(self, features: Mapping[str, Any]) -> Prediction:
        return await asyncio.to_thread(self._predict, features)

    async def complete(self, request: CompletionRequest) -> Completion:
        raise ProviderError(
            f"model {self.name!r} is a scikit-learn model and cannot answer prompts; "
            "use it from an inference step with `features:`"
        )

    async def close(self) -> None:
        self._estimator = None


class SklearnConfig(ProviderConfig):
    """A scikit-learn model file (joblib): ``model:`` names it; ``params.features`` may fix the
    order of the features it was trained on."""

    provider: Literal["sklearn"] = "sklearn"

    model_hint: ClassVar[str | None] = "name the model file, e.g. model: model/classifier.joblib"
    loads_model_file: ClassVar[bool] = True
    runs_code: ClassVar[bool] = True  # joblib unpickles
    refit: ClassVar[Literal["sklearn", "learned"] | None] = "sklearn"

    def serves(self) -> frozenset[Literal["text", "tabular"]]:
        return frozenset({"tabular"})

    def build(
        self, alias: str, base_dir: Path, models: Mapping[str, ProviderConfig], member: BuildMember
    ) -> tuple[Provider, Files]:
        from relayflow.providers import cache

        path = cache.model_path(alias, self.provider, self.model, base_dir)
        stat = cache.stat(path)
        key = ("sklearn", alias, str(path), stat, self.model_dump_json())

        def make() -> Provider:
            features = self.params.get("features")
            return SklearnProvider(
                alias,
                path,
                version=self.version or cache.file_version(path),
                price=self.price.price(),
                features=[str(f) for f in features] if isinstance(features, list) else None,
            )

        return cache.cached(key, make), ((str(path), stat),)
