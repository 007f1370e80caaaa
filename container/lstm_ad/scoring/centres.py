"""The centres: a row's log-likelihood under the Gaussian of the calibration covariance at its nearest centre.

The paper scores a row by log N(e; μ, Σ), one Gaussian fitted to the calibration rows' error vectors.
With centres there is one Gaussian for each of up to `error-centres` error vectors of training rows (a
random sample of the fitting and calibration rows, drawn by parallel/pooled.sample_centres), all with the
calibration covariance Σ, and a row's log-likelihood is that of the Gaussian centred on the nearest of
those vectors in Σ's metric (the largest term of their mixture):

    max_j log N(e; c_j, Σ) = best - min_j D(e, c_j)^2 / 2

Why: the rows a per-row Gaussian ranks lowest are mostly normal rows that are hard to predict (a beat a
little early on a steep edge, a burst of noise), and normal data holds more of them: their error vectors
lie near error vectors of training rows, so they score as the normal rows they are, while an anomaly's
error vector is far from every one. On the 40 ucr-dev series, through `train`, UCR accuracy rose from
0.692 to 0.733 on the seeds where this was chosen (0-2), and reached 0.775 and 0.750 on two seeds never
looked at while choosing (docs/benchmarks.md, "Error centres"). The price is scoring speed: a search among
the centres for every row (docs/benchmarks.md, "Inference speed").

Without centres (`error-centres` 0, or an artifact from before them) the one centre is μ: the paper's model
(error_model.py chooses).

Missing entries: a row with gaps is completed by the conditional mean of its missing entries given the others
under N(μ, Σ) (the most likely values: one small factorisation per pattern of missing entries), its nearest
centre is that of the completed row, and its log-likelihood is the marginal log-likelihood of the entries it has
under the Gaussian at that centre (gaussian.py). The best marginal over all centres would need the centres
re-whitened for each pattern (10,000 x k^2 operations, for every row with its own gaps); this costs one search,
as for a complete row.

The nearest centre is found exactly: with a k-d tree (scipy) for error vectors of up to KD_TREE_DIMENSIONS
entries, where it is fastest, and by matrix products over blocks of rows beyond, where a tree prunes
nothing. Both use torch's thread count (the server sets it per worker).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from scipy.linalg import solve_triangular
from scipy.spatial import cKDTree

from .blocks import row_blocks
from .gaussian import Gaussian

KD_TREE_DIMENSIONS = 32
MATRIX_ROWS = 256  # rows searched at once by matrix products: a (rows x centres) block of distances, 10 MB


@dataclass(frozen=True)
class NearestCentres:
    """Gaussians of covariance Σ at the centres; the search for each row's nearest one."""

    gaussian: Gaussian  # N(μ, Σ) of the calibration rows: Σ is every centre's covariance and the metric
    centres: np.ndarray  # (n, k), n >= 1: error vectors of training rows (float32, as stored)

    def log_likelihood(self, errors: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """max_j log N(e; c_j, Σ) per row of `errors` (n, k); marginal over observed entries for rows with
        gaps; NaN for a row with none. `exclude` (n,): per row, a centre it may not use (its own error vector,
        when a calibration row is scored; -1 for none)."""
        errors = np.asarray(errors)
        return np.concatenate([self.gaussian.log_likelihood(self.shifted(errors[block], _part(exclude, block)))
                               for block in row_blocks(len(errors))] or [np.empty(0)])

    def shifted(self, errors: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """e - c* + μ per row: the Gaussian at μ scores it exactly as N(e; c*, Σ) scores e."""
        errors = np.asarray(errors, dtype=np.float64)
        nearest = self.nearest(errors, exclude)
        shift = np.where((nearest >= 0)[:, None], self.gaussian.mean - self._centres[np.maximum(nearest, 0)], np.nan)
        return errors + shift

    def nearest(self, errors: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """Index of each row's nearest centre in Σ's metric (a row with gaps completed by its conditional mean,
        see the module doc); -1 for a row with no entry."""
        completed = self.gaussian.conditional_fill(errors)
        result = np.full(len(completed), -1, dtype=np.int64)
        scorable = np.flatnonzero(np.isfinite(completed).all(axis=1))
        if not len(scorable):
            return result
        queries = solve_triangular(self.gaussian.cholesky, (completed[scorable] - self.gaussian.mean).T, lower=True,
                                   check_finite=False).T  # whitened
        own = None if exclude is None else exclude[scorable]
        if self.gaussian.dim <= KD_TREE_DIMENSIONS:
            result[scorable] = self._tree_search(queries, own)
        else:
            result[scorable] = _matrix_search(self._whitened_centres, queries, own)
        return result

    @cached_property
    def _centres(self) -> np.ndarray:
        """The centres in float64, converted once (they are stored as the float32 error vectors they were)."""
        return np.asarray(self.centres, dtype=np.float64)

    @cached_property
    def _whitened_centres(self) -> np.ndarray:
        return solve_triangular(self.gaussian.cholesky, (self._centres - self.gaussian.mean).T, lower=True,
                                check_finite=False).T

    @cached_property
    def _tree(self) -> cKDTree:
        # Sliding-midpoint splits and 32 points a leaf: 1.7x the queries a second of scipy's defaults on the
        # ucr-dev error vectors (10 entries, 10,000 centres).
        return cKDTree(self._whitened_centres, leafsize=32, balanced_tree=False)

    def _tree_search(self, queries: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
        workers = torch.get_num_threads()
        if exclude is None or self._tree.n < 2:
            _, index = self._tree.query(queries, k=1, workers=workers)
            return np.asarray(index, dtype=np.int64)
        _, index = self._tree.query(queries, k=2, workers=workers)
        return np.where(index[:, 0] == exclude, index[:, 1], index[:, 0]).astype(np.int64)


def _part(exclude: np.ndarray | None, block: slice) -> np.ndarray | None:
    return None if exclude is None else exclude[block]


def _matrix_search(points: np.ndarray, queries: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
    """Nearest by |q - p|^2 = |q|^2 + |p|^2 - 2 q.p over blocks of rows (|q|^2 does not change the argmin), in
    float32: twice the speed of float64; rounding can only pick between centres at the same distance to 1e-6,
    and the score is then computed in float64 from the centre picked."""
    centres = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
    norms = (centres ** 2).sum(dim=1)
    result = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), MATRIX_ROWS):
        block = torch.from_numpy(np.ascontiguousarray(queries[start:start + MATRIX_ROWS], dtype=np.float32))
        distances = torch.addmm(norms[None, :], block, centres.T, alpha=-2.0)
        if exclude is not None and len(points) > 1:
            own = torch.from_numpy(exclude[start:start + MATRIX_ROWS])
            rows = torch.nonzero(own >= 0).ravel()
            distances[rows, own[rows]] = torch.inf
        result[start:start + len(block)] = distances.numpy().argmin(axis=1)  # torch's argmin: 20-30x slower on CPU
    return result
