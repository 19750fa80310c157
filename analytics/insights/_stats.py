"""Small robust-statistics helpers shared by the insight modules (pure numpy, no I/O)."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

# 1.4826 * MAD estimates the standard deviation of normally distributed data.
MAD_TO_SIGMA = 1.4826
# sqrt(pi/2) * mean absolute deviation estimates sigma for normal data (fallback when MAD is 0).
MEAN_ABS_TO_SIGMA = 1.2533

_STD_NORMAL = NormalDist()

FloatArray = NDArray[np.float64]


def robust_sigma(values: FloatArray) -> float:
    """Robust standard deviation: 1.4826 * MAD, falling back to the mean absolute deviation.

    MAD is 0 whenever more than half the values are identical (e.g. many zero-cost hours); the
    fallback then still reflects the minority that differs instead of claiming zero spread.
    """
    if values.size == 0:
        return 0.0
    centre = float(np.median(values))
    abs_dev = np.abs(values - centre)
    mad = float(np.median(abs_dev))
    if mad > 0:
        return MAD_TO_SIGMA * mad
    return MEAN_ABS_TO_SIGMA * float(np.mean(abs_dev))


def theil_sen(t: FloatArray, y: FloatArray) -> tuple[float, float]:
    """Theil-Sen line fit: (intercept, slope); slope = median of pairwise slopes.

    Robust to up to ~29% outliers (a spike day does not tilt the trend), O(n²) pairs which is fine
    for the <= a few hundred daily points we fit.
    """
    n = t.size
    if n == 0:
        return 0.0, 0.0
    if n == 1:
        return float(y[0]), 0.0
    i, j = np.triu_indices(n, k=1)
    dt = t[j] - t[i]
    keep = dt != 0
    if not np.any(keep):
        return float(np.median(y)), 0.0
    slope = float(np.median((y[j] - y[i])[keep] / dt[keep]))
    intercept = float(np.median(y - slope * t))
    return intercept, slope


def lag1_autocorrelation(residuals: FloatArray) -> float:
    """Lag-1 autocorrelation of residuals (0 when undefined)."""
    if residuals.size < 3:
        return 0.0
    centred = residuals - residuals.mean()
    denom = float(np.dot(centred, centred))
    if denom <= 0:
        return 0.0
    return float(np.dot(centred[:-1], centred[1:]) / denom)


def normal_quantile(p: float) -> float:
    """Standard normal quantile (inverse CDF)."""
    return _STD_NORMAL.inv_cdf(p)


def normal_sf(z: float) -> float:
    """Standard normal survival function P(Z > z)."""
    return 1.0 - _STD_NORMAL.cdf(z)


def student_t_quantile(p: float, df: float) -> float:
    """Student-t quantile: exact for df 1 and 2, Cornish-Fisher expansion (A&S 26.7.5) above.

    The expansion is within ~1% of the exact quantile for df >= 3 at the 80-99% levels we use.
    """
    if df <= 0:
        raise ValueError("df must be positive")
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = normal_quantile(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def slot_medians(values: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Each value's slot median (the same numbers as np.median per slot), in one sort.

    The anomaly detector computes this for every judged point; one lexsort instead of a median
    call per slot makes a scan several times faster. `values` must not contain NaN.
    """
    if values.size == 0:
        return np.empty_like(values)
    order = np.lexsort((values, slots))
    ordered = values[order]
    _, starts, counts = np.unique(slots[order], return_index=True, return_counts=True)
    upper = ordered[starts + counts // 2]
    lower = ordered[starts + (counts - 1) // 2]
    # Odd counts: lower and upper are the same element. Even: their mean, as np.median does.
    group = np.where(counts % 2 == 1, upper, (lower + upper) / 2.0)
    medians = np.empty_like(values)
    medians[order] = np.repeat(group, counts)
    return medians
