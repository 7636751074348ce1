"""Statistics of the bench: bootstrap confidence intervals of a mean, paired bootstrap tests of
two variants on the same items, and percentiles (TTR p50/p95)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relayflow.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: the most resampled values held in memory at once (rows x items), about 64 MB of float64
_CHUNK_CELLS = 8_000_000


@dataclass(frozen=True, slots=True)
class Diff:
    """Variant A's mean minus variant B's on the same items, with its bootstrap interval and
    two-sided p-value; ``significant`` when the p-value is below 1 - confidence."""

    mean_diff: float
    low: float
    high: float
    p_value: float
    significant: bool


def _check(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be between 0 and 1 (e.g. 0.95), not {confidence}")
    if resamples < 1:
        raise InputError(f"resamples must be at least 1 (e.g. 2000), not {resamples}")


def _bootstrap_means(
    values: npt.NDArray[np.float64], resamples: int, seed: int
) -> npt.NDArray[np.float64]:
    """The means of ``resamples`` samples of ``values`` drawn with replacement."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = len(values)
    rows = max(1, _CHUNK_CELLS // n)
    means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        indices = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[indices].mean(axis=1)
    return means


def _interval(means: npt.NDArray[np.float64], confidence: float) -> tuple[float, float]:
    import numpy as np

    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_ci(
    per_item: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of ``per_item`` (the same ``seed`` gives
    the same interval). No items gives (0.0, 0.0), as their `Score` has value 0.0."""
    _check(confidence, resamples)
    if not per_item:
        return 0.0, 0.0
    import numpy as np

    values = np.asarray(per_item, dtype=np.float64)
    return _interval(_bootstrap_means(values, resamples, seed), confidence)


def bootstrap_stat_ci(
    columns: Sequence[Sequence[float]],
    statistic: Callable[..., float],
    *,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """The percentile bootstrap interval of ``statistic(*columns)`` for a statistic that is
    not a mean (a median, a ratio of two sums): the rows of every column are resampled
    together. No rows gives (0.0, 0.0)."""
    _check(confidence, resamples)
    lengths = {len(c) for c in columns}
    if len(lengths) > 1:
        raise InputError("every column of a bootstrap must have the same number of rows")
    n = lengths.pop() if lengths else 0
    if n == 0:
        return 0.0, 0.0
    import numpy as np

    arrays = [np.asarray(c, dtype=np.float64) for c in columns]
    rng = np.random.default_rng(seed)
    values = np.empty(resamples, dtype=np.float64)
    for index in range(resamples):
        pick = rng.integers(0, n, size=n)
        values[index] = statistic(*(a[pick] for a in arrays))
    return _interval(values, confidence)


def paired_bootstrap_diff(
    a_per_item: Sequence[float],
    b_per_item: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Diff:
    """Whether variant A scores differently from B on the same items: resample item indices
    (both variants together) and take the mean difference of each resample. The p-value is
    twice the smaller share of resampled differences on either side of 0 (plus one, so it is
    never 0), which mostly agrees with whether the interval holds 0."""
    _check(confidence, resamples)
    if len(a_per_item) != len(b_per_item):
        raise InputError(
            f"variant A has {len(a_per_item)} items but B has {len(b_per_item)}: a paired "
            "test needs both scored on the same items, in the same order"
        )
    if not a_per_item:
        return Diff(0.0, 0.0, 0.0, 1.0, False)
    import numpy as np

    diffs = np.asarray(a_per_item, dtype=np.float64) - np.asarray(b_per_item, dtype=np.float64)
    means = _bootstrap_means(diffs, resamples, seed)
    low, high = _interval(means, confidence)
    below = (int(np.count_nonzero(means <= 0)) + 1) / (resamples + 1)
    above = (int(np.count_nonzero(means >= 0)) + 1) / (resamples + 1)
    p_value = min(1.0, 2 * min(below, above))
    return Diff(float(diffs.mean()), low, high, p_value, p_value < 1 - confidence)


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between the closest ranks,
    as ``numpy.percentile`` computes it by default."""
    if not 0 <= q <= 100:
        raise InputError(f"percentile q must be between 0 and 100, not {q}")
    ordered = sorted(values)
    if not ordered:
        raise InputError("percentile of no values: measure at least one run first")
    position = (len(ordered) - 1) * q / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    low, high = ordered[lower], ordered[upper]
    if low == high:
        return float(low)
    # numpy's lerp: interpolate from the nearer end, so the result stays within [low, high]
    if fraction < 0.5:
        return float(low + (high - low) * fraction)
    return float(high - (high - low) * (1 - fraction))


def median(values: Iterable[float]) -> float:
    """The 50th percentile of ``values``."""
    return percentile(values, 50)
