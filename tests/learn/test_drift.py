"""The drift monitor: river's detectors on a stream of correctness, the minimum number of
observations, the threshold on the rolling metric, and the JSON checkpoint."""

from __future__ import annotations

import json
import random

import pytest

from relayflow.errors import RelayflowError
from relayflow.learn.drift import DriftMonitor, DriftStatus, item_score

pytest.importorskip("river", reason="river provides the drift detectors")


def _stream(*parts: tuple[float, int], seed: int = 0) -> list[bool]:
    """Correct (True) with probability p, for n items, part after part."""
    rng = random.Random(seed)
    return [rng.random() < p for p, n in parts for _ in range(n)]


def _pattern(correct: int, wrong: int, times: int) -> list[bool]:
    return ([True] * correct + [False] * wrong) * times


def _feed(monitor: DriftMonitor, stream: list[bool], start: int = 0) -> list[DriftStatus]:
    """Each item as a prediction against the reference "phishing"; keys are k<index>."""
    return [
        monitor.observe("phishing" if ok else "legit", "phishing", f"k{start + i}")
        for i, ok in enumerate(stream)
    ]


def test_a_stable_model_never_asks_for_a_retrain() -> None:
    monitor = DriftMonitor("accuracy", 0.85)
    statuses = _feed(monitor, _stream((0.95, 1500)))
    assert not any(s.retrain for s in statuses)
    assert monitor.observations == 1500


def test_a_drop_under_the_threshold_asks_for_a_retrain_on_the_items_after_the_change() -> None:
    monitor = DriftMonitor("f1", 0.85, min_observations=50)
    statuses: list[DriftStatus] = []
    for ok in _stream((0.95, 300), (0.3, 300)):
        statuses.extend(_feed(monitor, [ok], len(statuses)))
        if statuses[-1].retrain:
            break
    first = len(statuses) - 1
    # the alarm comes after the change, and the request once 50 items followed the alarm
    assert 300 + 50 <= first < 500
    status = statuses[first]
    assert status.retrain and status.metric is not None and status.metric < 0.85
    assert (
        "drift detected (adwin)" in status.reason and "under the threshold 0.850" in status.reason
    )
    keys = monitor.keys()
    assert len(keys) == 50 and keys[-1] == f"k{first}"
    # every key is from after the change: a retrain on them learns the new concept only
    assert all(int(k[1:]) >= 300 for k in keys)
    assert not any(s.drift for s in statuses[:300])


def test_an_alarm_whose_metric_stays_above_the_threshold_is_dismissed() -> None:
    monitor = DriftMonitor("accuracy", 0.5, min_observations=50)
    statuses = _feed(monitor, [True] * 300 + _pattern(7, 3, 40))
    judged = [s for s in statuses if s.metric is not None]
    assert judged, "ADWIN must notice 1.0 falling to 0.7"
    assert not any(s.retrain for s in statuses)
    assert judged[0].reason.startswith("drift dismissed: accuracy 0.7")


def test_alarms_before_the_minimum_number_of_observations_are_ignored() -> None:
    stream = [True] * 100 + [False] * 100
    early = DriftMonitor("accuracy", 0.85, min_observations=30)
    assert any(s.drift for s in _feed(early, stream)), "the alarm the next monitor must ignore"
    patient = DriftMonitor("accuracy", 0.85, min_observations=200)
    assert not any(s.drift for s in _feed(patient, stream))


def test_without_a_threshold_the_metric_must_fall_below_the_one_before_the_change() -> None:
    falling = DriftMonitor("accuracy", None)
    assert any(s.retrain for s in _feed(falling, _stream((0.95, 300), (0.3, 300))))
    rising = DriftMonitor("accuracy", None)
    statuses = _feed(rising, _stream((0.5, 300), (0.97, 300)))
    assert any(s.drift for s in statuses)
    assert not any(s.retrain for s in statuses)


def test_page_hinkley_detects_the_drop_too() -> None:
    monitor = DriftMonitor("accuracy", 0.85, detector="page_hinkley")
    statuses = _feed(monitor, _stream((0.95, 300), (0.3, 300)))
    assert any(s.retrain for s in statuses)
    assert "page_hinkley" in next(s.reason for s in statuses if s.retrain)


def test_a_restored_checkpoint_continues_exactly_where_the_monitor_was() -> None:
    stream = _stream((0.95, 300), (0.3, 150), seed=3)
    original = DriftMonitor("accuracy", 0.85)
    _feed(original, stream[:330])
    state = json.loads(json.dumps(original.state()))  # what the store keeps
    restored = DriftMonitor("accuracy", 0.85)
    restored.restore(state)
    assert restored.observations == original.observations == 330
    assert restored.keys() == original.keys()
    after = _feed(original, stream[330:], 330)
    assert any(s.retrain for s in after), "the stream must carry the monitor to a request"
    assert _feed(restored, stream[330:], 330) == after


def test_a_checkpoint_of_another_detector_or_metric_is_ignored() -> None:
    adwin = DriftMonitor("accuracy", 0.85)
    _feed(adwin, [True] * 40)
    other = DriftMonitor("accuracy", 0.85, detector="page_hinkley")
    other.restore(adwin.state())
    assert other.observations == 0
    f1 = DriftMonitor("f1", 0.85)
    f1.restore(adwin.state())
    assert f1.observations == 0
    adwin_again = DriftMonitor("accuracy", 0.85)
    adwin_again.restore(adwin.state())
    assert adwin_again.observations == 40


def test_reset_starts_over() -> None:
    monitor = DriftMonitor("accuracy", 0.85)
    _feed(monitor, _stream((0.95, 300), (0.3, 200)))
    monitor.reset()
    assert monitor.observations == 0 and monitor.keys() == [] and monitor.rolling_metric() is None


def test_item_scores_and_bad_settings() -> None:
    assert item_score("accuracy", "Phishing ", "phishing") == 1.0
    assert item_score("f1", "legit", "phishing") == 0.0
    assert item_score("pass_at_k", True, None) == 1.0
    with pytest.raises(RelayflowError, match="unknown drift detector"):
        DriftMonitor("accuracy", detector="cusum")  # type: ignore[arg-type]
    with pytest.raises(RelayflowError, match="min_observations <= window"):
        DriftMonitor("accuracy", min_observations=100, window=50)
