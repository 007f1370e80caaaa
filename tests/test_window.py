"""The score window (lstm_ad/scoring/window.py) against slow, obviously-correct references."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lstm_ad.scoring.window import Scale, ScoreWindow, window_means


def slow_window_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Row t: the finite values of rows t - (window - 1) // 2 .. t + window // 2."""
    out = []
    for t in range(len(values)):
        seen = [v for v in values[max(0, t - (window - 1) // 2): t + window // 2 + 1] if np.isfinite(v)]
        out.append(sum(seen) / len(seen) if seen else np.nan)
    return np.array(out)


def slow_window_count(values: np.ndarray, window: int) -> list[int]:
    return [sum(np.isfinite(v) for v in values[max(0, t - (window - 1) // 2): t + window // 2 + 1])
            for t in range(len(values))]


def slow_score(scorer: ScoreWindow, values: np.ndarray) -> np.ndarray:
    out = []
    means = slow_window_mean(values, scorer.window)
    counts = slow_window_count(values, scorer.window)
    for value, mean, count in zip(values, means, counts, strict=True):
        if np.isnan(value):
            out.append(np.nan)
            continue
        z_row = (value - scorer.row.centre) / scorer.row.spread
        z_mean = (mean - scorer.mean.centre) / (scorer.mean.spread * np.sqrt(scorer.window / count))
        out.append(scorer.row.centre + scorer.row.spread * min(z_row, z_mean))
    return np.array(out)


@pytest.mark.parametrize("window", [1, 2, 5, 24, 25, 1000])
def test_window_mean_averages_the_finite_values_of_the_rows_around(window: int) -> None:
    values = np.random.default_rng(window).normal(-20, 5, 300)
    values[[0, 1, 50, 51, 52, 200]] = np.nan  # warm-up-like start and gaps
    means, counts = window_means(values, window)
    assert counts.tolist() == slow_window_count(values, window)
    np.testing.assert_allclose(means, slow_window_mean(values, window), rtol=1e-12,
                               equal_nan=True)


def test_scale_is_the_median_and_its_distance_to_the_0_001_quantile() -> None:
    values = np.arange(1001.0)[::-1].copy()  # 0..1000: median 500; 0.001 quantile at sorted position 1.0
    values[7] = np.nan  # 993 is left out
    scale = Scale.of(values)
    kept = sorted(v for v in values if np.isfinite(v))  # 1000 values: 0..1000 without 993
    assert scale.centre == (kept[499] + kept[500]) / 2 == 499.5
    position = 0.001 * (len(kept) - 1)  # numpy's default (linear) quantile
    low = kept[0] + (kept[1] - kept[0]) * position
    assert scale.spread == pytest.approx(499.5 - low, rel=1e-12)


def test_the_score_is_the_more_unusual_of_the_row_and_its_window_on_the_row_scale() -> None:
    rng = np.random.default_rng(3)
    calibration = [rng.normal(-10, 2, 400), rng.normal(-10, 2, 150)]
    means = np.concatenate([slow_window_mean(part, 25) for part in calibration])
    counts = np.concatenate([slow_window_count(part, 25) for part in calibration])
    scorer = ScoreWindow.fit(25, np.concatenate(calibration), means, counts)
    # The means' spread: deviations from the median, those of partial windows (the parts' ends) shrunk by
    # sqrt(count / 25) to what a full window's would be, down to their 0.001 quantile.
    centre = float(np.median(means))
    assert scorer.mean == Scale(centre, -np.quantile((means - centre) * np.sqrt(counts / 25), 0.001))
    assert scorer.active
    request = rng.normal(-10, 2, 500)
    request[300:340] -= 3  # a stretch of rows each a little off: the window's mean finds it, on the stretch
    request[100] = -60  # one clearly bad row: the row's own term finds it
    request[:5] = np.nan  # warm-up
    scores = scorer(request)
    np.testing.assert_allclose(scores, slow_score(scorer, request), rtol=1e-12, equal_nan=True)
    assert np.isnan(scores[:5]).all() and np.isfinite(scores[5:]).all()
    own = scores == request
    assert own[100] and own.sum() > 100  # where the row's term is the lower one the score is the row's own
    assert (scores <= request + 1e-12)[5:].all()  # never more normal than the row itself
    assert np.nanargmin(scores) == 100
    stretch, elsewhere = scores[310:330].mean(), np.r_[scores[5:85], scores[115:285]].mean()
    assert stretch < request[310:330].mean() and stretch < elsewhere - 3
    away_from_row_100 = np.where(np.abs(np.arange(len(scores)) - 100) > 25, scores, np.nan)
    assert 300 <= np.nanargmin(away_from_row_100) < 340


def test_a_window_of_one_or_a_flat_calibration_scores_rows_alone() -> None:
    values = np.array([np.nan, -3.0, -1.0, -50.0, -2.0])
    alone = ScoreWindow(1, Scale(-2.0, 1.0), Scale(-2.0, 1.0))
    flat = ScoreWindow(25, Scale(-2.0, 0.0), Scale(-2.0, 1.0))
    for scorer in (alone, flat):
        assert not scorer.active
        np.testing.assert_array_equal(scorer(values), values)


def test_the_scales_round_trip_through_json() -> None:
    scorer = ScoreWindow(25, Scale(-11.25, 3.5), Scale(-11.0, 1.25))
    assert ScoreWindow.from_json(json.loads(json.dumps(scorer.to_json()))) == scorer
