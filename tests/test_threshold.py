"""The alarm threshold rule on synthetic scores."""

import numpy as np
import pytest

from lstm_ad.scoring.threshold import alarm_threshold, alarms


def test_threshold_is_the_lower_empirical_quantile():
    scores = np.random.default_rng(0).permutation(np.arange(1001.0))  # 0 .. 1000
    assert alarm_threshold(scores, 0.01) == 10.0  # floor(0.01 * 1000) = 10: rows 0..9 are below
    assert alarm_threshold(scores, 0.001) == 1.0
    assert alarm_threshold(scores, 0.0001) == 0.0  # below the smallest score nothing alarms


@pytest.mark.parametrize("fraction", [0.001, 0.01, 0.05, 0.2])
@pytest.mark.parametrize("n", [50, 999, 20000])
def test_at_most_the_fraction_of_calibration_rows_alarm(fraction, n):
    scores = np.random.default_rng(n).normal(-5, 3, n)
    threshold = alarm_threshold(scores, fraction)
    below = int(alarms(scores, threshold).sum())
    assert below <= fraction * n
    assert below == int(np.floor(fraction * (n - 1)))  # and exactly floor(q (n - 1)): distinct scores
    assert threshold in scores


def test_alarms_keep_warm_up_rows_empty_and_ignore_them_for_the_threshold():
    scores = np.array([np.nan, np.nan, -1.0, -10.0, -2.0, -3.0])
    assert alarm_threshold(scores, 0.34) == -3.0  # of the 4 finite scores: the floor(0.34 * 3) + 1 = 2nd lowest
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
