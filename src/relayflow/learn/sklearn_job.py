"""The scikit-learn retraining job: refit a clone of the production estimator on the labelled
runs, score both on the golden set, promote the candidate only when it is strictly better."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from relayflow.errors import ConfigError, Conflict, InputError
from relayflow.eval.scoring import score
from relayflow.learn.card import GoldenScores, model_card
from relayflow.learn.data import LabelledRow, labelled_rows, wait_for_runs
from relayflow.learn.golden import split
from relayflow.learn.job import (
    RetrainOutcome,
    RetrainRequest,
    Target,
    check_sizes,
    decide,
    fields_of,
    golden_file,
    golden_metric,
)
from relayflow.store.registry import Candidate, Registry

_INSTALL = "pip install 'relayflow[sklearn]'"


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _number(value: Any) -> Any:
    """Numbers read back from JSON or CSV as floats; anything else as it is."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return value
    try:
        return float(value)
    except ValueError:
        return value


def feature_columns(estimator: Any, target: Target, params: Mapping[str, Any]) -> list[str]:
    """The columns the provider feeds the model, in the same order (see SklearnProvider)."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    configured = params.get("features")
    if isinstance(configured, list):
        return [str(f) for f in configured]
    return list(target.step.features or [])


def _matrix(rows: Sequence[LabelledRow], columns: list[str]) -> list[list[Any]]:
    return [[_number(row.inputs[c]) for c in columns] for row in rows]


def _score(metric: str, estimator: Any, x: list[list[Any]], y: list[Any]) -> float:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            predicted = [_plain(p) for p in estimator.predict(x)]
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"the model could not predict the golden rows: {exc}") from exc
    return score(metric, predicted, y).value


def retrain_sklearn(request: RetrainRequest, target: Target, registry: Registry) -> RetrainOutcome:
    """Blocking: meant for a worker thread (`run_retrain` puts it there)."""
    try:
        import joblib
        import sklearn
        from sklearn.base import clone
    except ImportError as exc:
        raise ConfigError(f"retraining a scikit-learn model needs it: {_INSTALL}") from exc
    assert target.path is not None  # noqa: S101 - invariant: an sklearn target has a model file
    workflow = request.workflow
    production = registry.adopt(target.name, "sklearn", target.path)
    try:
        estimator = joblib.load(production.artifact)
    except Exception as exc:  # unpickling garbage raises almost anything
        raise InputError(f"cannot load {production.artifact} to clone it: {exc}") from exc
    spec = workflow.spec.models[target.name]
    columns = feature_columns(estimator, target, spec.params)
    fields = fields_of(workflow, target)
    if request.wait_for:
        wait_for_runs(registry.engine, target.step.name, request.wait_for)
    rows = labelled_rows(
        registry.engine,
        workflow=workflow.name,
        step=target.step.name,
        fields=fields,
        runs=request.runs,
        since=request.since,
        limit=request.limit,
    )
    rows = [row for row in rows if all(c in row.inputs for c in columns)]
    parts = split(rows, fields=fields, golden_file=golden_file(workflow), needed=columns)
    check_sizes(parts.train, parts.golden, parts.source)
    y_train = [row.label for row in parts.train]
    if len({str(y) for y in y_train}) < 2 and hasattr(estimator, "classes_"):
        raise Conflict(
            f"the {len(y_train)} labelled runs to train on all say {y_train[0]!r}: a classifier "
            "needs at least two classes; label more runs"
        )
    candidate = clone(estimator)
    try:
        candidate.fit(_matrix(parts.train, columns), y_train)
    except (ValueError, TypeError) as exc:
        raise InputError(f"refitting {type(estimator).__name__} failed: {exc}") from exc

    metric = golden_metric(workflow, request)
    x_golden = _matrix(parts.golden, columns)
    y_golden = [row.label for row in parts.golden]
    scores = GoldenScores(
        metric,
        candidate=_score(metric, candidate, x_golden, y_golden),
        parent=_score(metric, estimator, x_golden, y_golden),
        n=len(parts.golden),
        source=parts.source,
    )
    buffer = io.BytesIO()
    joblib.dump(candidate, buffer)
    sources: dict[str, int] = {}
    for row in parts.train:
        sources[row.source] = sources.get(row.source, 0) + 1
    card = model_card(
        kind="sklearn",
        workflow=workflow.name,
        target=target.name,
        parent=production.version,
        scores=scores,
        data={
            "train_rows": len(parts.train),
            "golden_rows": len(parts.golden),
            "label_sources": sources,
            "from": "labelled runs of step " + target.step.name,
            "runs": "the drift window" if request.runs else "the newest labelled runs",
        },
        trigger=request.trigger,
        details={"estimator": type(candidate).__name__, "features": columns},
        packages=("scikit-learn", "joblib"),
    )
    card["versions"]["scikit-learn"] = sklearn.__version__
    registered = registry.register(
        Candidate(
            target.name,
            "sklearn",
            buffer.getvalue(),
            target=target.path,
            parent=production.version,
            metrics={"golden": scores.as_dict()},
            card=card,
        )
    )
    return decide(
        registry, target, registered.version, production.version, scores, len(parts.train)
    )
