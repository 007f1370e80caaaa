"""N(μ, Σ): the multivariate Gaussian of the error model (error_model.py), fitted by maximum likelihood.

Public methods validate, private ones compute. The covariance is regularised with a
small ridge so that it is always positive definite, even when an error component is
constant (a constant column) or there are fewer vectors than dimensions.

Attribution. The log-likelihood of a vector e is

    log N(e; mean, cov) = best - D(e)^2 / 2,   D(e)^2 = (e - mean)^T cov^-1 (e - mean),

where best = log N(mean; mean, cov) is the highest log-likelihood there is. D^2 is a sum over the
entries of e: D^2 = sum_i (e - mean)_i [cov^-1 (e - mean)]_i. `contributions` returns these
terms, so that they sum exactly to D^2 = 2 (best - log N(e; mean, cov)); a term is negative when an entry's
error goes against what the correlations predict from the others (it makes the vector less
surprising). With a diagonal covariance the terms are the squared standardised errors.

Missing entries (NaN). A vector with some entries missing is scored by the exact marginal
of the Gaussian over the entries it has: N(e_o; mean_o, cov_oo) (no imputation); its
contributions are those of that marginal (NaN for the missing entries), and they sum to
2 (best_o - its log-likelihood) with best_o the marginal's highest. A vector with no entry scores NaN.
Rows are grouped by their pattern of missing entries, one small factorisation per pattern (_gappy).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular

from .blocks import row_blocks

logger = logging.getLogger(__name__)

RIDGE = 1e-6  # relative to the mean variance; plus an absolute floor below


@dataclass(frozen=True)
class Gaussian:
    mean: np.ndarray  # (k,)
    cov: np.ndarray  # (k, k), regularised, positive definite

    @classmethod
    def fit(cls, errors: np.ndarray) -> Gaussian:
        """Maximum-likelihood fit to `errors` (n, k); rows must be finite, n >= 2."""
        errors = np.asarray(errors, dtype=np.float64)
        if errors.ndim != 2 or errors.shape[0] < 2:
            raise ValueError(f"need at least 2 error vectors of shape (n, k), got {errors.shape}")
        if not np.isfinite(errors).all():
            raise ValueError("error vectors contain NaN or infinity")
        return cls._fit(errors)

    @classmethod
    def _fit(cls, errors: np.ndarray) -> Gaussian:
        mean = errors.mean(axis=0)
        centred = errors - mean
        return cls.from_scatter(mean, centred.T @ centred, errors.shape[0])

    @classmethod
    def from_scatter(cls, mean: np.ndarray, scatter: np.ndarray, n: int) -> Gaussian:
        """The fit from its sufficient statistics: the mean and the scatter sum_i (e_i - mean)(e_i - mean)^T
        of n vectors (added up over the ranks of a distributed job: parallel/pooled.py)."""
        cov = scatter / n  # MLE: divide by n, not n - 1
        k = cov.shape[0]
        ridge = RIDGE * max(float(np.trace(cov)) / k, 1e-12)
        return cls(mean=mean, cov=cov + ridge * np.eye(k))

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def log_likelihood(self, errors: np.ndarray) -> np.ndarray:
        """log N(e; mean, cov) for each row of `errors` (n, k), float32 or float64. A row with missing
        entries (NaN) gets the marginal log-likelihood of the entries it has; a row with none gets NaN."""
        errors = self._checked(errors)
        gappy = np.isnan(errors).any(axis=1)
        if not gappy.any():
            return self._log_likelihood(errors)
        result = np.full(len(errors), np.nan)
        result[~gappy] = self._log_likelihood(errors[~gappy])
        result[gappy] = self._gappy(errors[gappy], terms=False)[0]
        return result

    def _checked(self, errors: np.ndarray) -> np.ndarray:
        errors = np.asarray(errors)
        if errors.ndim != 2 or errors.shape[1] != self.dim:
            raise ValueError(f"expected error vectors of shape (n, {self.dim}), got {errors.shape}")
        return errors

    # The factorisations of cov, each computed once per model (not per call). Complete rows' log-likelihoods and
    # the centres' metric use numpy's factor, the solves (marginals, attribution terms) scipy's: the two LAPACK
    # builds can differ in the last bit, and each path keeps the one it was calibrated and tested with.

    @cached_property
    def cholesky(self) -> np.ndarray:
        """The lower Cholesky factor L of cov (L L^T = cov), numpy's."""
        return np.linalg.cholesky(self.cov)

    @cached_property
    def _factor(self) -> tuple[np.ndarray, bool]:
        """scipy's (cho_factor) lower Cholesky factor of cov, for cho_solve."""
        return cho_factor(self.cov, lower=True, check_finite=False)

    @cached_property
    def _log_det(self) -> float:
        return 2.0 * float(np.log(np.diag(self.cholesky)).sum())

    @cached_property
    def _precision(self) -> tuple[np.ndarray, float]:
        """(cov^-1, log det cov), for the marginals and conditional means of rows with missing entries."""
        precision = cho_solve(self._factor, np.eye(self.dim), check_finite=False)
        return (precision + precision.T) / 2, 2.0 * float(np.log(np.diag(self._factor[0])).sum())

    def conditional_fill(self, errors: np.ndarray) -> np.ndarray:
        """`errors` (n, k) in float64 with each row's missing entries m replaced by their conditional mean given its
        observed entries o, E[e_m | e_o] = mean_m - P_mm^-1 P_mo (e_o - mean_o) with P = cov^-1 (one factorisation
        of P_mm per pattern); a row with no entry stays NaN. Without such gaps, `errors` itself (not a copy)."""
        errors = np.asarray(self._checked(errors), dtype=np.float64)
        missing = np.isnan(errors)
        gappy = np.flatnonzero(missing.any(axis=1) & ~missing.all(axis=1))
        if not len(gappy):
            return errors
        filled = errors.copy()
        precision, _ = self._precision
        patterns, inverse = np.unique(missing[gappy], axis=0, return_inverse=True)
        inverse = inverse.ravel()
        for index, pattern in enumerate(patterns):
            o, m = np.flatnonzero(~pattern), np.flatnonzero(pattern)
            rows = gappy[inverse == index]
            deviations = filled[np.ix_(rows, o)] - self.mean[o]
            factor = cho_factor(precision[np.ix_(m, m)], lower=True, check_finite=False)
            shift = cho_solve(factor, precision[np.ix_(m, o)] @ deviations.T, check_finite=False).T
            filled[np.ix_(rows, m)] = self.mean[m] - shift
        return filled

    def _gappy(self, errors: np.ndarray, terms: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows that miss entries: the marginal log-likelihood over the observed entries o (NaN when none)
        and, with `terms`, each observed entry's term of the marginal's D^2 (NaN for missing entries).

        One factorisation per pattern of missing entries m, of whichever is smaller: the precision's block
        P_mm (the marginal's precision is P_oo - P_om P_mm^-1 P_mo and log det cov_oo = log det cov +
        log det P_mm), or cov_oo itself. A few missing entries cost a small factorisation per row.
        """
        precision, log_det = self._precision
        result = np.full(len(errors), np.nan)
        shares = np.full(errors.shape, np.nan) if terms else None
        for block in row_blocks(len(errors)):
            centred = errors[block].astype(np.float64) - self.mean
            missing = np.isnan(centred)
            filled = np.where(missing, 0.0, centred)
            weighted = filled @ precision  # rows of P x with the missing entries at 0
            patterns, inverse = np.unique(missing, axis=0, return_inverse=True)
            inverse = inverse.ravel()
            for index, pattern in enumerate(patterns):
                o, m = np.flatnonzero(~pattern), np.flatnonzero(pattern)
                if not len(o):
                    continue
                rows = np.flatnonzero(inverse == index)
                x = filled[np.ix_(rows, o)]
                if len(m) <= len(o):
                    factor = cho_factor(precision[np.ix_(m, m)], lower=True, check_finite=False)
                    solved = cho_solve(factor, weighted[np.ix_(rows, m)].T, check_finite=False).T
                    marginal_x = weighted[np.ix_(rows, o)] - solved @ precision[np.ix_(m, o)]  # cov_oo^-1 x_o
                    marginal_log_det = log_det + 2.0 * float(np.log(np.diag(factor[0])).sum())
                else:
                    factor = cho_factor(self.cov[np.ix_(o, o)], lower=True, check_finite=False)
                    marginal_x = cho_solve(factor, x.T, check_finite=False).T
                    marginal_log_det = 2.0 * float(np.log(np.diag(factor[0])).sum())
                quadratic = np.einsum("ij,ij->i", x, marginal_x)
                result[block.start + rows] = -0.5 * (len(o) * math.log(2.0 * math.pi) + marginal_log_det + quadratic)
                if shares is not None:
                    shares[np.ix_(block.start + rows, o)] = x * marginal_x
        return result, shares

    def _log_likelihood(self, errors: np.ndarray) -> np.ndarray:
        constant = self.dim * math.log(2.0 * math.pi) + self._log_det
        result = np.empty(len(errors))
        # In blocks of rows, in float64: the temporaries of a long request stay a few MB.
        for block in row_blocks(len(errors)):
            centred = errors[block].astype(np.float64) - self.mean
            z = solve_triangular(self.cholesky, centred.T, lower=True, check_finite=False)  # L^-1 (e - mean): (k, rows)
            result[block] = -0.5 * (constant + np.einsum("ij,ij->j", z, z))
        return result

    @property
    def best_log_likelihood(self) -> float:
        """log N(mean; mean, cov): the highest log-likelihood there is (log N(e; mean, cov) = this - D^2 / 2)."""
        return -0.5 * (self.dim * math.log(2.0 * math.pi) + self._log_det)

    def contributions(self, errors: np.ndarray) -> np.ndarray:
        """Each entry's term of the squared Mahalanobis distance (n, k): rows sum to 2 (best - log N(e; mean, cov)).

        Missing entries (NaN) get NaN, and the others the terms of the marginal over the observed entries.
        """
        errors = self._checked(errors)
        gappy = np.isnan(errors).any(axis=1)
        if not gappy.any():
            return self._contributions(errors)
        result = np.full(errors.shape, np.nan)
        result[~gappy] = self._contributions(errors[~gappy])
        result[gappy] = self._gappy(errors[gappy], terms=True)[1]
        return result

    def _contributions(self, errors: np.ndarray) -> np.ndarray:
        result = np.empty(errors.shape)
        for block in row_blocks(len(errors)):
            centred = errors[block].astype(np.float64) - self.mean
            weighted = cho_solve(self._factor, centred.T, check_finite=False).T  # cov^-1 (e - mean), per row
            result[block] = centred * weighted
        return result

    def to_json(self) -> dict[str, list]:
        return {"mean": self.mean.tolist(), "cov": self.cov.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, list]) -> Gaussian:
        return cls(mean=np.asarray(data["mean"], dtype=np.float64),
                   cov=np.asarray(data["cov"], dtype=np.float64))
