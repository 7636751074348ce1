"""Bootstrap intervals, paired bootstrap tests and percentiles."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayflow.errors import RelayflowError
from relayflow.eval.stats import bootstrap_ci, median, paired_bootstrap_diff, percentile


def test_bootstrap_ci_contains_the_mean_and_is_deterministic() -> None:
    items = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0] * 3
    low, high = bootstrap_ci(items)
    mean = sum(items) / len(items)
    assert low < mean < high
    assert 0.0 <= low and high <= 1.0
    assert bootstrap_ci(items) == (low, high)


def test_bootstrap_ci_depends_on_the_seed() -> None:
    rng = random.Random(3)
    items = [rng.random() for _ in range(50)]  # continuous, so quantiles rarely tie
    assert bootstrap_ci(items, seed=0) == bootstrap_ci(items, seed=0)
    assert bootstrap_ci(items, seed=0) != bootstrap_ci(items, seed=1)


def test_bootstrap_ci_narrows_with_more_items() -> None:
    pattern = [1.0, 0.0, 1.0, 1.0]
    few_low, few_high = bootstrap_ci(pattern * 5)
    many_low, many_high = bootstrap_ci(pattern * 500)
    assert many_high - many_low < (few_high - few_low) / 5
    assert many_low < 0.75 < many_high


def test_bootstrap_ci_widens_with_confidence() -> None:
    items = [float(i % 3 == 0) for i in range(60)]
    narrow = bootstrap_ci(items, confidence=0.5)
    wide = bootstrap_ci(items, confidence=0.99)
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


def test_bootstrap_ci_edges() -> None:
    assert bootstrap_ci([0.4] * 10) == pytest.approx((0.4, 0.4))
    assert bootstrap_ci([]) == (0.0, 0.0)
    with pytest.raises(RelayflowError, match="confidence must be between 0 and 1"):
        bootstrap_ci([1.0], confidence=95)
    with pytest.raises(RelayflowError, match="resamples must be at least 1"):
        bootstrap_ci([1.0], resamples=0)


def test_paired_diff_of_identical_variants_is_not_significant() -> None:
    items = [float(i % 2) for i in range(100)]
    diff = paired_bootstrap_diff(items, list(items))
    assert (diff.mean_diff, diff.low, diff.high) == (0.0, 0.0, 0.0)
    assert diff.p_value == 1.0
    assert not diff.significant


def test_paired_diff_of_clearly_different_variants_is_significant() -> None:
    rng = random.Random(7)
    a = [float(rng.random() < 0.9) for _ in range(200)]
    b = [float(rng.random() < 0.4) for _ in range(200)]
    diff = paired_bootstrap_diff(a, b)
    assert diff.mean_diff == pytest.approx((sum(a) - sum(b)) / 200)
    assert 0 < diff.low < diff.mean_diff < diff.high
    assert diff.p_value < 0.01
    assert diff.significant
    reverse = paired_bootstrap_diff(b, a)
    assert reverse.high < 0 and reverse.significant


def test_paired_diff_of_a_small_noisy_gap_is_not_significant() -> None:
    a = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0]
    b = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    diff = paired_bootstrap_diff(a, b)
    assert diff.low < 0 < diff.high
    assert diff.p_value > 0.05
    assert not diff.significant


def test_paired_diff_needs_the_same_items() -> None:
    with pytest.raises(RelayflowError, match="variant A has 2 items but B has 3"):
        paired_bootstrap_diff([1.0, 0.0], [1.0, 0.0, 1.0])
    assert not paired_bootstrap_diff([], []).significant


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=40
    ),
    q=st.floats(min_value=0, max_value=100),
)
def test_percentile_agrees_with_numpy(values: list[float], q: float) -> None:
    expected = float(np.percentile(values, q))
    assert percentile(values, q) == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_percentile_known_values() -> None:
    ttr = [4.0, 1.0, 3.0, 2.0]
    assert median(ttr) == 2.5
    assert percentile(ttr, 0) == 1.0
    assert percentile(ttr, 100) == 4.0
    assert percentile(ttr, 95) == pytest.approx(3.85)
    assert median([7.0]) == 7.0


def test_percentile_errors() -> None:
    with pytest.raises(RelayflowError, match="no values"):
        median([])
    with pytest.raises(RelayflowError, match="between 0 and 100"):
        percentile([1.0], 101)
