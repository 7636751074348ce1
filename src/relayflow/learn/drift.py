"""Drift detection over a stream of scored items: river's ADWIN or Page-Hinkley on each item's
correctness, gated by a minimum number of observations and a threshold on the rolling metric."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from relayflow.errors import ConfigError, InputError
from relayflow.eval.scoring import accuracy, score

DetectorKind = Literal["adwin", "page_hinkley"]
DETECTORS: tuple[DetectorKind, ...] = ("adwin", "page_hinkley")

#: at most this many correctness values are kept to rebuild a detector from a checkpoint
REPLAY_CAP = 5000
_STATE_VERSION = 2


@dataclass(frozen=True, slots=True)
class DriftStatus:
    """What the monitor concluded after an observation.

    ``drift`` is true from the detector's alarm until the alarm is judged, on the first
    ``min_observations`` items after it: ``retrain`` when their metric is under the threshold
    (or, without a threshold, under the metric before the change), else the alarm is dismissed.
    """

    observations: int
    drift: bool
    metric: float | None
    retrain: bool
    reason: str = ""


def item_score(metric: str, prediction: Any, reference: Any) -> float:
    """One item's contribution to ``metric`` in [0, 1]: correctness for label metrics."""
    if metric in ("accuracy", "f1"):
        return accuracy([prediction], [reference]).per_item[0]
    if metric == "pass_at_k":
        return score(metric, [prediction], None).value
    return score(metric, [prediction], [reference]).per_item[0]


def _detector(kind: DetectorKind, min_observations: int, params: Mapping[str, Any]) -> Any:
    try:
        from river import drift
    except ImportError as exc:
        raise ConfigError(
            "drift detection needs river: pip install river (or the extra 'relayflow[examples]')"
        ) from exc
    if kind == "adwin":
        return drift.ADWIN(**{"delta": 0.002, **params})  # type: ignore[no-untyped-call]
    if kind == "page_hinkley":
        # correctness only matters when it falls; 20 suits a 0/1 stream (alarm within ~40
        # items of a drop from 0.95 to 0.4)
        settings = {"mode": "down", "threshold": 20.0, "min_instances": min_observations}
        return drift.PageHinkley(**{**settings, **params})
    raise InputError(f"unknown drift detector {kind!r}: use one of {', '.join(DETECTORS)}")


class DriftMonitor:
    """Feeds ``item_score`` of each (prediction, reference) to a river detector and keeps the
    last ``window`` items for the rolling metric. Alarms before ``min_observations`` items
    (since the last reset) are ignored; after an alarm the window starts over, and a retrain
    is asked for once it holds ``min_observations`` items whose metric is under the threshold.
    State round-trips through JSON (`state`/`restore`)."""

    def __init__(
        self,
        metric: str = "accuracy",
        threshold: float | None = None,
        *,
        detector: DetectorKind = "adwin",
        min_observations: int = 50,
        window: int = 500,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        if min_observations < 1 or window < min_observations:
            raise InputError(
                f"drift monitor: need 1 <= min_observations <= window, got {min_observations} "
                f"and {window}"
            )
        self.metric = metric
        self.threshold = threshold
        self.kind: DetectorKind = detector
        self.min_observations = min_observations
        self.window_size = window
        self._params = dict(params or {})
        self._detector = _detector(detector, min_observations, self._params)
        self._history: deque[float] = deque(maxlen=REPLAY_CAP)
        # (item score, prediction, reference, key); the answers only for F1, which needs the
        # labels themselves: other metrics average the scores, so long texts are not kept
        self._window: deque[tuple[float, Any, Any, str]] = deque(maxlen=window)
        self._count = 0
        self._drift = False
        self._baseline: float | None = None

    @property
    def observations(self) -> int:
        """Items observed since the last reset."""
        return self._count

    def observe(self, prediction: Any, reference: Any, key: str = "") -> DriftStatus:
        """Score one item and update the detector; ``key`` (a run id) names it in `keys`."""
        value = item_score(self.metric, prediction, reference)
        self._count += 1
        self._history.append(round(value, 4))
        if self.metric == "f1":
            self._window.append((value, prediction, reference, key))
        else:
            self._window.append((value, None, None, key))
        self._detector.update(value)
        alarm = self._detector.drift_detected and self._count >= self.min_observations
        if alarm and not self._drift:
            self._on_alarm()
        if not self._drift:
            return DriftStatus(self._count, False, None, False)
        if len(self._window) < self.min_observations:
            return DriftStatus(self._count, True, None, False, "drift: waiting for more items")
        metric = self.rolling_metric()
        assert metric is not None  # noqa: S101 - invariant: the window is full, so it has a metric
        limit = self.threshold if self.threshold is not None else self._baseline
        if limit is None or metric < limit:
            what = "the threshold" if self.threshold is not None else "before the change"
            reason = (
                f"drift detected ({self.kind}) and {self.metric} {metric:.3f} over the last "
                f"{len(self._window)} labelled items"
                + (f" is under {what} {limit:.3f}" if limit is not None else "")
            )
            return DriftStatus(self._count, True, metric, True, reason)
        # judged once, on the first items after the alarm: not a drop, so the alarm is dismissed
        self._drift = False
        reason = f"drift dismissed: {self.metric} {metric:.3f} is not under {limit:.3f}"
        return DriftStatus(self._count, True, metric, False, reason)

    def _on_alarm(self) -> None:
        """Start the window over at the alarm: a detector's window still holds items from
        before the change, and a model retrained on them would learn the old concept too.
        The metric before the change is kept for the no-threshold rule."""
        if len(self._window) >= self.min_observations:
            self._baseline = self._metric_of(list(self._window))
        self._window.clear()
        self._drift = True

    def _metric_of(self, items: list[tuple[float, Any, Any, str]]) -> float:
        if self.metric == "f1":
            return score("f1", [p for _, p, _, _ in items], [r for _, _, r, _ in items]).value
        return sum(v for v, _, _, _ in items) / len(items)

    def rolling_metric(self) -> float | None:
        """The metric over the items in the window, or None before any."""
        return self._metric_of(list(self._window)) if self._window else None

    def keys(self) -> list[str]:
        """The keys of the items in the window (after an alarm: the items since the change)."""
        return [k for _, _, _, k in self._window if k]

    def reset(self) -> None:
        """Start over (after a retrain request): a fresh detector and an empty window."""
        self._detector = _detector(self.kind, self.min_observations, self._params)
        self._history.clear()
        self._window.clear()
        self._count = 0
        self._drift = False
        self._baseline = None

    def state(self) -> dict[str, Any]:
        """Everything needed to continue after a restart, as JSON-able values."""
        return {
            "version": _STATE_VERSION,
            "detector": self.kind,
            "metric": self.metric,
            "count": self._count,
            "drift": self._drift,
            "baseline": self._baseline,
            "history": list(self._history),
            "window": [list(item) for item in self._window],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state``; one from another detector or metric is ignored. The
        detector is rebuilt by replaying the kept correctness values (its alarms during the
        replay happened before and are already reflected in the window)."""
        if (
            state.get("version") != _STATE_VERSION
            or state.get("detector") != self.kind
            or state.get("metric") != self.metric
        ):
            return
        self.reset()
        for value in state.get("history", []):
            self._history.append(float(value))
            self._detector.update(float(value))
        for item in state.get("window", []):
            value, prediction, reference, key = item
            self._window.append((float(value), prediction, reference, str(key)))
        self._count = int(state.get("count", len(self._history)))
        self._drift = bool(state.get("drift", False))
        baseline = state.get("baseline")
        self._baseline = None if baseline is None else float(baseline)
