"""Statistics of the whole training data when each rank holds or works on only part of it.

Every rank computes sums over the files it works on (`Share.mine`: each file counted once in the
job); the sums are added up over the ranks (`Collective.sum`), and every rank derives the same result
from them, so that every rank takes the same decisions (early stopping, divergence, the threshold).

- Scaler: per column, the count and sum of the values present give the mean; then the sum of squared
  deviations from that mean gives the standard deviation (two passes, as numpy's nanstd does).
- The error model's Gaussian: n and sum(e) give the mean; then the scatter sum((e - mean)(e - mean)^T)
  gives the covariance (scoring/gaussian.py: Gaussian.from_scatter, the same ridge as a fit in one process).
- Losses: the sums of squared and absolute errors and the count of entries.
- Error centres (scoring/centres.py): each rank draws its share of the sample from its own rows, in proportion
  to how many it has, and the draws are gathered in rank order (a single process draws from all rows at once).
- The score window's scales and the alarm threshold: the calibration scores of every rank are gathered
  (Collective.gather) and the rules applied to all of them (scoring/error_model.py): the exact single-process
  quantiles.

The results equal those of one process reading all the files up to float rounding (the order of
the additions differs). A job of one process computes them as one process always did (Scaler.fit, the
Gaussian's maximum-likelihood fit, np.mean).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..data import Scaler
from .collectives import Collective, Share


def fit_scaler(parts: list[np.ndarray], collective: Collective) -> Scaler:
    """The scaler of the fitting parts of every rank; `parts` are this rank's (all files of its share)."""
    if collective.size == 1:
        return Scaler.fit(parts)
    mine = collective.training.mine(parts)
    columns = parts[0].shape[1]
    stacked = np.concatenate(mine, axis=0) if mine else np.empty((0, columns))
    present = ~np.isnan(stacked)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        count, total = collective.sum(np.stack([present.sum(axis=0), np.where(present, stacked, 0.0).sum(axis=0)]))
        mean = total / count  # NaN for a column with no value anywhere: check_scaler reports it
        deviations = np.where(present, stacked - mean, 0.0)
        squares = collective.sum((deviations ** 2).sum(axis=0))
        std = np.sqrt(squares / count)
    return Scaler.from_moments(mean, std)


def mse_mae(errors: np.ndarray, collective: Collective) -> tuple[float, float]:
    """Mean squared and absolute error over every entry of every rank's error vectors."""
    if collective.size == 1:
        return float(np.mean(errors ** 2)), float(np.mean(np.abs(errors)))
    squares, absolute, count = collective.sum([np.sum(errors ** 2), np.sum(np.abs(errors)), errors.size])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(squares / count), float(absolute / count)


def count(value: int, collective: Collective) -> int:
    """A count (rows, cells, subsequences) added up over the ranks."""
    return int(round(float(collective.sum([value])[0])))


def share_count(value: int, collective: Collective, share: Share) -> int:
    """A count every rank of a share knows alike (its files' cells), added up over the shares."""
    return count(value if share.position == 0 else 0, collective)


def mean_and_scatter(errors: np.ndarray, collective: Collective) -> tuple[np.ndarray, np.ndarray, int]:
    """The mean, the scatter sum((e - mean)(e - mean)^T) and the count of every rank's error vectors (n, k)
    (`errors`: this rank's complete ones, float64): the sufficient statistics of the Gaussian's fit."""
    if collective.size == 1:  # as Gaussian.fit computes them
        mean = errors.mean(axis=0)
        centred = errors - mean
        return mean, centred.T @ centred, errors.shape[0]
    k = errors.shape[1]
    sums = collective.sum(np.concatenate([[len(errors)], errors.sum(axis=0)]))
    n, mean = int(round(sums[0])), sums[1:] / sums[0]
    centred = errors - mean
    return mean, collective.sum(centred.T @ centred).reshape(k, k), n


def sample_centres(fitting: list[np.ndarray], calibration: list[np.ndarray], size: int, seed: int,
                   collective: Collective) -> tuple[np.ndarray | None, list[np.ndarray] | None]:
    """Up to `size` complete error vectors drawn at random, without replacement, from the rows of every rank's
    fitting and calibration parts (this rank's: `fitting`, `calibration`; float32, NaN where a value is
    missing), every rank's in rank order; and for each of this rank's calibration parts, per row, the index of
    the row's own vector among them (-1 when it was not drawn), so that a calibration row can be scored
    without it. (None, None) when `size` is 0."""
    if size == 0:
        return None, None
    parts = fitting + calibration
    complete = [np.flatnonzero(np.isfinite(part).all(axis=1)) for part in parts]
    offsets = np.cumsum([0] + [len(rows) for rows in complete])
    drawn = draw(int(offsets[-1]), size, seed, collective)
    take = len(drawn)
    part_of = np.searchsorted(offsets, drawn, side="right") - 1
    row_of = np.array([complete[p][d - offsets[p]] for p, d in zip(part_of.tolist(), drawn.tolist(), strict=True)],
                      dtype=np.int64)
    k = parts[0].shape[1] if parts else 0
    vectors = np.array([parts[p][r] for p, r in zip(part_of.tolist(), row_of.tolist(), strict=True)],
                       dtype=np.float32).reshape(take, k)
    first = sum(collective.gather_ints(take)[:collective.rank.rank])  # this rank's draws start here
    own = [np.full(len(part), -1, dtype=np.int64) for part in calibration]
    for position, (p, r) in enumerate(zip(part_of.tolist(), row_of.tolist(), strict=True)):
        if p >= len(fitting):
            own[p - len(fitting)][r] = first + position
    width = collective.gather_ints(k)
    centres = collective.gather(vectors.ravel()).astype(np.float32).reshape(-1, max(width))
    return centres, own


def draw(mine: int, size: int, seed: int, collective: Collective) -> np.ndarray:
    """This rank's share of a random sample of up to `size` items, without replacement, from every rank's items
    (`mine`: how many this rank has): the sorted indices among its own, in proportion to how many it has."""
    total = count(mine, collective)
    take = mine if total <= size else min(mine, int(round(size * mine / total)))
    rng = np.random.default_rng([seed, collective.rank.rank])
    return np.sort(rng.choice(mine, size=take, replace=False))


def gather_rows(rows: np.ndarray, collective: Collective) -> np.ndarray:
    """Every rank's rows (n, k) stacked in rank order (a rank may have none)."""
    width = max(collective.gather_ints(rows.shape[1]))
    return collective.gather(rows.ravel()).reshape(-1, width)
