"""The alarm threshold: a rule on the calibration rows' scores, stored with the model.

Rule: with q = `alarm-fraction`, the threshold is the empirical q-quantile of the
calibration rows' scores (scored as a request's rows are: error_model.py), taken as an
observed score (numpy's "lower" method: the (floor(q (n - 1)) + 1)-th smallest of n scores).
A row alarms when its score is strictly below the threshold, so at most floor(q (n - 1)) <= q n
calibration rows alarm: q is the false-alarm rate the threshold allows on data like the calibration part.
"""

from __future__ import annotations

import numpy as np


def alarm_threshold(scores: np.ndarray, fraction: float) -> float:
    """The stored threshold of the rule above; `scores` must hold at least one finite value."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    scores = scores[np.isfinite(scores)]
    if not len(scores):
        raise ValueError("no finite scores to set an alarm threshold on")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"alarm fraction must be in (0, 1), got {fraction}")
    return float(np.quantile(scores, fraction, method="lower"))


def alarms(scores: np.ndarray, threshold: float) -> np.ndarray:
    """1.0 where score < threshold, 0.0 elsewhere, NaN where the score is NaN (warm-up rows)."""
    scores = np.asarray(scores, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        flags = (scores < threshold).astype(np.float64)
    flags[np.isnan(scores)] = np.nan
    return flags
