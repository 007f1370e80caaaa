"""The Gaussian error model against scipy.stats, as an independent reference."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from lstm_ad.scoring.gaussian import Gaussian


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


@pytest.mark.parametrize("bad, message", [
    (np.zeros((1, 2)), r"need at least 2 error vectors of shape \(n, k\), got \(1, 2\)"),
    (np.zeros(5), r"need at least 2 error vectors of shape \(n, k\), got \(5,\)"),
    (np.array([[np.nan, 1.0], [1.0, 2.0]]), "error vectors contain NaN or infinity"),
])
def test_fit_rejects_unusable_input(bad, message):
    with pytest.raises(ValueError, match=message):
        Gaussian.fit(bad)


# --- attribution: each entry's term of the squared Mahalanobis distance --------------------------


def test_contributions_sum_to_twice_the_gap_to_the_best_score():
    rng = np.random.default_rng(5)
    g = Gaussian.fit(rng.standard_normal((400, 6)) @ rng.standard_normal((6, 6)))
    points = rng.standard_normal((30, 6)) * 2
    terms = g.contributions(points)
    reference = multivariate_normal(mean=g.mean, cov=g.cov)
    np.testing.assert_allclose(g.best_log_likelihood, reference.logpdf(g.mean), rtol=1e-12)
    np.testing.assert_allclose(terms.sum(axis=1), 2 * (reference.logpdf(g.mean) - reference.logpdf(points)),
                               rtol=1e-9)


def test_contributions_of_a_diagonal_gaussian_are_squared_standardised_errors():
    """Hand-made: independent entries, so an entry's share is its own (e - mean)^2 / variance."""
    g = Gaussian(mean=np.array([1.0, 0.0, -1.0]), cov=np.diag([4.0, 1.0, 0.25]))
    terms = g.contributions(np.array([[1.0, 3.0, -1.0], [5.0, 0.0, -0.5]]))
    np.testing.assert_allclose(terms, [[0.0, 9.0, 0.0], [4.0, 0.0, 1.0]], atol=1e-12)


def test_contributions_blame_the_entry_that_breaks_the_correlation():
    """Hand-made: two strongly correlated entries and an independent one. Moving both correlated entries
    together costs little; moving one alone makes it (and its partner, which now disagrees) the culprits,
    with the partner's term smaller; the independent entry at its mean takes no share."""
    cov = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    g = Gaussian(mean=np.zeros(3), cov=cov)
    together, alone = g.contributions(np.array([[2.0, 2.0, 0.0], [2.0, 0.0, 0.0]]))
    assert together.sum() < alone.sum()
    np.testing.assert_allclose(alone, [2 * 2 / 0.19, 2 * 0 * -1.8 / 0.19, 0.0], atol=1e-12)
    assert alone[0] > 20 and alone[2] == 0.0
    np.testing.assert_allclose(together, [2 * 0.2 / 0.19, 2 * 0.2 / 0.19, 0.0], atol=1e-12)


def test_contributions_keep_nan_rows_and_check_shapes():
    g = Gaussian(mean=np.zeros(2), cov=np.eye(2))
    terms = g.contributions(np.array([[np.nan, np.nan], [1.0, 2.0]]))
    assert np.isnan(terms[0]).all() and np.allclose(terms[1], [1.0, 4.0])
    with pytest.raises(ValueError, match=r"expected error vectors of shape \(n, 2\), got \(3, 3\)"):
        g.contributions(np.zeros((3, 3)))


# --- missing entries: the exact marginal over the observed entries ---------------------------------


def test_rows_with_missing_entries_get_the_marginal_log_likelihood_of_scipy():
    rng = np.random.default_rng(6)
    g = Gaussian.fit(rng.standard_normal((500, 5)) @ rng.standard_normal((5, 5)))
    points = rng.standard_normal((40, 5)) * 2
    mask = rng.random((40, 5)) < 0.3
    mask[0] = False  # a complete row
    mask[1] = True  # nothing observed
    mask[2] = [True, True, True, True, False]  # one entry
    gappy = np.where(mask, np.nan, points)
    scores = g.log_likelihood(gappy)
    assert np.isnan(scores[1]) and np.isfinite(np.delete(scores, 1)).all()
    for i in np.delete(np.arange(40), 1):
        o = np.flatnonzero(~mask[i])
        expected = multivariate_normal(mean=g.mean[o], cov=g.cov[np.ix_(o, o)]).logpdf(points[i, o])
        np.testing.assert_allclose(scores[i], expected, rtol=1e-10)
    terms = g.contributions(gappy)
    assert (np.isnan(terms) == mask).all()  # missing entries have no term
    for i in (0, 2, 5):
        o = np.flatnonzero(~mask[i])
        marginal = multivariate_normal(mean=g.mean[o], cov=g.cov[np.ix_(o, o)])
        np.testing.assert_allclose(np.nansum(terms[i]), 2 * (marginal.logpdf(g.mean[o]) - scores[i]), rtol=1e-9)


def test_marginals_stay_accurate_with_a_near_constant_entry():
    """Like a constant column's errors (variance at the ridge): both routes of _gappy against scipy."""
    rng = np.random.default_rng(7)
    errors = rng.standard_normal((800, 6)) @ rng.standard_normal((6, 6))
    errors[:, 3] = 1e-9 * rng.standard_normal(800)
    g = Gaussian.fit(errors)
    points = rng.standard_normal((6, 6))
    points[:, 3] = 0.0
    for missing in ([0], [3], [0, 1, 2, 4], [1, 3, 5]):
        gappy = points.copy()
        gappy[:, missing] = np.nan
        o = np.setdiff1d(np.arange(6), missing)
        expected = multivariate_normal(mean=g.mean[o], cov=g.cov[np.ix_(o, o)]).logpdf(points[:, o])
        np.testing.assert_allclose(g.log_likelihood(gappy), expected, rtol=1e-6)


def test_conditional_fill_is_the_textbook_conditional_mean() -> None:
    rng = np.random.default_rng(11)
    a = rng.normal(size=(5, 5))
    g = Gaussian(mean=rng.normal(size=5), cov=a @ a.T + np.eye(5))
    errors = rng.normal(size=(6, 5))
    errors[0, [1, 3]] = np.nan
    errors[1, 4] = np.nan
    errors[2] = np.nan  # nothing observed: stays empty
    filled = g.conditional_fill(errors)
    for i in (0, 1):
        o, m = np.isfinite(errors[i]), np.isnan(errors[i])
        expected = g.mean[m] + g.cov[np.ix_(m, o)] @ np.linalg.solve(g.cov[np.ix_(o, o)], errors[i, o] - g.mean[o])
        np.testing.assert_allclose(filled[i, m], expected, rtol=1e-10)
        np.testing.assert_array_equal(filled[i, o], errors[i, o])
    assert np.isnan(filled[2]).all()
    np.testing.assert_array_equal(filled[3:], errors[3:])
