"""Attribution: each column's share of how far a row's error vector lies from the mean error.

The share is taken of the one Gaussian N(μ, Σ) of the calibration rows (gaussian.py), not of the Gaussian at
the row's nearest centre that the score uses: on smd-dev the one Gaussian's terms named the culprit columns
more often (docs/benchmarks.md, "Alarms and attribution"). So the shares of a row sum to its squared
Mahalanobis distance from μ, D^2 = 2 (best - log N(e; μ, Σ)), whatever its score is.
"""

from __future__ import annotations

import numpy as np


def column_shares(contributions: np.ndarray, columns: int) -> np.ndarray:
    """(rows, l*d) terms of D^2 (Gaussian.contributions; horizon-major: entry h*d + j is column j at
    horizon h+1) -> (rows, d) each column's share of D^2: D^2 split in proportion to the absolute size of
    each column's terms. Shares are >= 0 and sum to D^2 = 2 (best - log N(e; μ, Σ)) on every row.

    A row with gaps: the terms are those of the marginal over its observed entries (Gaussian.contributions),
    the missing columns get NaN, and the shares sum to the marginal's D^2.

    Why absolute sizes: a term is negative when an entry's error goes against what the correlations
    predict from the others, which is as much a part of the anomaly as a large positive term; signed sums
    let such terms cancel, and ranked the dataset's culprit columns worse (scripts/bench_answers.py).
    """
    rows = contributions.shape[0]
    terms = contributions.reshape(rows, -1, columns)
    missing = np.isnan(terms).all(axis=1)  # (rows, d): a missing value has no error at any horizon
    size = np.nansum(np.abs(terms), axis=1)  # (rows, d)
    total = size.sum(axis=1, keepdims=True)
    distance = np.nansum(terms, axis=(1, 2))[:, None]  # D^2 of the observed entries
    with np.errstate(invalid="ignore", divide="ignore"):
        shares: np.ndarray = np.where(total > 0, size / total, 0.0) * distance
    shares[missing] = np.nan  # a missing column (or a row with nothing observed) gets no share
    return shares
