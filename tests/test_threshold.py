"""The alarm threshold rule on synthetic scores, against scipy's quantiles."""

import numpy as np
import pytest
from scipy import stats

from lstm_ad.scoring.threshold import TAIL_SHIFT, alarm_threshold, alarms


@pytest.mark.parametrize("fraction", [0.0001, 0.001, 0.01, 0.1])
def test_on_an_exponential_lower_tail_the_threshold_is_its_quantile_moved_by_the_shift(fraction):
    """Laplace scores have an exponential lower tail: the rule's tail is exact there, so the threshold is the
    distribution's own q-quantile, moved down by TAIL_SHIFT times (median - 0.01 quantile)."""
    laplace = stats.laplace(loc=-20.0, scale=3.0)
    scores = laplace.rvs(size=400_000, random_state=np.random.default_rng(1))
    unit = laplace.ppf(0.5) - laplace.ppf(0.01)
    expected = laplace.ppf(fraction) - TAIL_SHIFT * unit
    assert alarm_threshold(scores, fraction) == pytest.approx(expected, abs=0.01 * unit)


def test_small_fractions_extrapolate_instead_of_reading_the_lowest_scores():
    """1,000 calibration rows: at 0.0001 the empirical quantile would be the lowest score; the rule goes
    further out, and further for smaller fractions."""
    scores = stats.norm(-5, 3).rvs(size=1000, random_state=np.random.default_rng(2))
    thresholds = [alarm_threshold(scores, q) for q in (0.1, 0.01, 0.001, 0.0001)]
    assert thresholds == sorted(thresholds, reverse=True)
    assert thresholds[-1] < thresholds[-2] < scores.min()
    assert alarms(scores, thresholds[1]).sum() <= 0.01 * len(scores)  # a Gaussian's tail is lighter


def test_scores_all_alike_give_a_threshold_nothing_of_them_falls_below():
    assert alarm_threshold(np.full(500, -3.5), 0.001) == -3.5
    assert alarms(np.full(500, -3.5), -3.5).sum() == 0


def test_alarms_keep_warm_up_rows_empty_and_ignore_them_for_the_threshold():
    finite = np.array([-1.0, -10.0, -2.0, -3.0])
    scores = np.concatenate([[np.nan, np.nan], finite])
    assert alarm_threshold(scores, 0.01) == alarm_threshold(finite, 0.01)
    flags = alarms(scores, -2.5)
    assert np.isnan(flags[:2]).all()
    np.testing.assert_array_equal(flags[2:], [0, 1, 0, 1])


@pytest.mark.parametrize("scores, fraction, message", [
    ([np.nan], 0.1, "no finite scores"),
    ([], 0.1, "no finite scores"),
    ([1.0, 2.0], 0.0, r"alarm fraction must be in \(0, 1\), got 0.0"),
    ([1.0], 1.0, r"alarm fraction must be in \(0, 1\), got 1.0"),
])
def test_threshold_refuses_unusable_input(scores, fraction, message):
    with pytest.raises(ValueError, match=message):
        alarm_threshold(np.array(scores), fraction)
