"""The nearest-centre search and log-likelihood (scoring/centres.py), the error model without centres, and the
draw of the centres (parallel/pooled.sample_centres), against brute-force loops and scipy.stats."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from conftest import slow_nearest
from lstm_ad.parallel.collectives import Collective
from lstm_ad.parallel.pooled import sample_centres
from lstm_ad.scoring.blocks import ROWS_PER_BLOCK
from lstm_ad.scoring.centres import KD_TREE_DIMENSIONS, MATRIX_ROWS, NearestCentres
from lstm_ad.scoring.error_model import ErrorModel
from lstm_ad.scoring.gaussian import Gaussian


def random_model(k: int, centres: int, seed: int = 0) -> NearestCentres:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(k, k))
    gaussian = Gaussian(mean=rng.normal(size=k) * 0.1, cov=a @ a.T / k + 0.5 * np.eye(k))
    return NearestCentres(gaussian, rng.standard_t(3, size=(centres, k)).astype(np.float32))


@pytest.mark.parametrize("k", [3, KD_TREE_DIMENSIONS + 8], ids=["k-d tree", "matrix products"])
def test_nearest_centres_are_those_of_a_brute_force_loop(k: int) -> None:
    model = random_model(k, centres=300)
    rows = 2 * MATRIX_ROWS + 37  # more than one block of matrix products
    errors = np.random.default_rng(1).standard_t(3, size=(rows, k))
    np.testing.assert_array_equal(model.nearest(errors)[:200], slow_nearest(model, errors[:200]))
    # Excluding each row's own centre: rows that are centres find the nearest other one.
    own = np.full(rows, -1)
    own[:50] = np.arange(50)
    errors[:50] = model.centres[:50]
    np.testing.assert_array_equal(model.nearest(errors, own)[:120], slow_nearest(model, errors[:120], own[:120]))
    assert (model.nearest(errors)[:50] == np.arange(50)).all()  # without the exclusion, each finds itself


def test_log_likelihood_is_the_best_of_the_gaussians_at_the_centres() -> None:
    model = random_model(4, centres=60)
    errors = np.random.default_rng(2).normal(size=(40, 4)) * 3
    each = np.stack([multivariate_normal(c, model.gaussian.cov).logpdf(errors) for c in model.centres.astype(float)])
    np.testing.assert_allclose(model.log_likelihood(errors), each.max(axis=0), rtol=1e-10)


def test_a_long_request_scores_each_row_as_alone() -> None:
    model = random_model(3, centres=50)
    errors = np.random.default_rng(6).normal(size=(2 * ROWS_PER_BLOCK + 5, 3))
    every = model.log_likelihood(errors)
    pieces = [model.log_likelihood(errors[i:i + 1000]) for i in range(0, len(errors), 1000)]
    np.testing.assert_array_equal(every, np.concatenate(pieces))


def test_without_centres_it_is_the_paper_gaussian() -> None:
    gaussian = random_model(5, centres=1).gaussian
    errors = np.random.default_rng(3).normal(size=(30, 5))
    errors[4, 2] = np.nan
    for model in (ErrorModel(gaussian), ErrorModel(gaussian, np.empty((0, 5), dtype=np.float32))):
        np.testing.assert_array_equal(model.score(errors), gaussian.log_likelihood(errors))


@pytest.mark.parametrize("k", [6, KD_TREE_DIMENSIONS + 4], ids=["k-d tree", "matrix products"])
def test_rows_with_gaps_are_scored_by_their_marginal_at_the_centre_nearest_their_completion(k: int) -> None:
    model = random_model(k, centres=80)
    rng = np.random.default_rng(4)
    errors = rng.normal(size=(25, k)) * 2
    errors[rng.random((25, k)) < 0.3] = np.nan
    errors[3] = np.nan  # nothing observed
    nearest = slow_nearest(model, errors)
    np.testing.assert_array_equal(model.nearest(errors), nearest)
    scores = model.log_likelihood(errors)
    assert np.isnan(scores[3]) and np.isfinite(np.delete(scores, 3)).all()
    for i in (0, 1, 2, 7, 11):
        o = np.isfinite(errors[i])
        marginal = multivariate_normal(model.centres[nearest[i], o].astype(float), model.gaussian.cov[np.ix_(o, o)])
        np.testing.assert_allclose(scores[i], marginal.logpdf(errors[i, o]), rtol=1e-10)


def parts(rows: list[int], k: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, k)).astype(np.float32) for n in rows]


def test_sample_centres_takes_every_complete_row_when_there_are_few() -> None:
    fitting, calibration = parts([30, 20]), parts([10, 5], seed=1)
    fitting[0][4, 1] = np.nan  # an incomplete error vector is never a centre
    centres, own = sample_centres(fitting, calibration, 1000, seed=0, collective=Collective())
    complete = np.concatenate([p[np.isfinite(p).all(axis=1)] for p in fitting + calibration])
    np.testing.assert_array_equal(centres, complete)  # in part order
    for part, indices in zip(calibration, own, strict=True):
        np.testing.assert_array_equal(centres[indices], part)  # each calibration row's own vector


def test_sample_centres_draws_at_most_size_rows_at_random() -> None:
    fitting, calibration = parts([500, 300]), parts([200], seed=1)
    centres, own = sample_centres(fitting, calibration, 100, seed=7, collective=Collective())
    assert centres.shape == (100, 3) and centres.dtype == np.float32
    every = np.concatenate(fitting + calibration)
    positions = [int(np.flatnonzero((every == c).all(axis=1))[0]) for c in centres]
    assert positions == sorted(set(positions))  # distinct rows, in part order
    drawn = own[0] >= 0
    assert 0 < drawn.sum() < 100 and (own[0][~drawn] == -1).all()
    np.testing.assert_array_equal(centres[own[0][drawn]], calibration[0][drawn])
    again, _ = sample_centres(fitting, calibration, 100, seed=7, collective=Collective())
    other, _ = sample_centres(fitting, calibration, 100, seed=8, collective=Collective())
    np.testing.assert_array_equal(again, centres)
    assert not np.array_equal(other, centres)
    assert sample_centres(fitting, calibration, 0, seed=7, collective=Collective()) == (None, None)
