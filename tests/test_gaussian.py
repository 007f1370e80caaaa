"""The Gaussian error model against scipy.stats, as an independent reference."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from lstm_ad.gaussian import Gaussian


def test_fit_is_maximum_likelihood():
    rng = np.random.default_rng(0)
    errors = rng.multivariate_normal([1.0, -2.0, 0.5], [[2, 0.3, 0], [0.3, 1, 0.2], [0, 0.2, 0.5]], size=5000)
    g = Gaussian.fit(errors)
    np.testing.assert_allclose(g.mean, errors.mean(axis=0))
    mle = np.cov(errors, rowvar=False, bias=True)
    np.testing.assert_allclose(g.cov, mle, rtol=1e-5, atol=1e-8)  # only the tiny ridge differs


def test_log_likelihood_matches_scipy():
    rng = np.random.default_rng(1)
    errors = rng.standard_normal((300, 4)) @ rng.standard_normal((4, 4))
    g = Gaussian.fit(errors)
    points = rng.standard_normal((50, 4)) * 3
    expected = multivariate_normal(mean=g.mean, cov=g.cov).logpdf(points)
    np.testing.assert_allclose(g.log_likelihood(points), expected, rtol=1e-10)


def test_univariate_matches_scipy_norm():
    from scipy.stats import norm

    rng = np.random.default_rng(2)
    errors = rng.normal(0.2, 0.7, (1000, 1))
    g = Gaussian.fit(errors)
    x = np.linspace(-3, 3, 11)[:, None]
    expected = norm(loc=g.mean[0], scale=np.sqrt(g.cov[0, 0])).logpdf(x[:, 0])
    np.testing.assert_allclose(g.log_likelihood(x), expected, rtol=1e-10)


def test_degenerate_errors_stay_positive_definite():
    """A constant component and fewer vectors than dimensions still give finite scores."""
    errors = np.c_[np.zeros(3), np.arange(3.0), np.arange(3.0) * 2, np.ones(3)]
    g = Gaussian.fit(errors)
    assert np.all(np.linalg.eigvalsh(g.cov) > 0)
    assert np.isfinite(g.log_likelihood(errors)).all()


def test_lower_score_further_from_the_mean():
    g = Gaussian.fit(np.random.default_rng(3).standard_normal((500, 2)))
    near, far = g.log_likelihood(np.array([[0.0, 0.0], [4.0, -4.0]]))
    assert far < near - 10


def test_nan_rows_score_nan_and_json_round_trip():
    g = Gaussian.fit(np.random.default_rng(4).standard_normal((50, 2)))
    scores = g.log_likelihood(np.array([[np.nan, np.nan], [0.1, 0.2]]))
    assert np.isnan(scores[0]) and np.isfinite(scores[1])
    again = Gaussian.from_json(g.to_json())
    np.testing.assert_array_equal(again.cov, g.cov)


@pytest.mark.parametrize("bad", [np.zeros((1, 2)), np.zeros(5), np.array([[np.nan, 1.0], [1.0, 2.0]])])
def test_fit_rejects_unusable_input(bad):
    with pytest.raises(ValueError):
        Gaussian.fit(bad)
