"""Missing values: gaps read as the network's own prediction, scored by the marginal at the centre nearest the
completed row, skipped in training."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

from conftest import sine_series, slow_nearest
from lstm_ad.data import Series
from lstm_ad.errors import DataError
from lstm_ad.forecast import fill_gaps
from lstm_ad.hyperparameters import Hyperparameters
from lstm_ad.model import LSTMForecaster, NetworkConfig
from lstm_ad.predictor import Predictor
from lstm_ad.training import train

HP = Hyperparameters(context_length=20, prediction_length=2, sequence_stride=5, hidden_size=12, num_layers=1,
                     epochs=8, lr=0.01, early_stopping_patience=0, error_centres=10_000)  # gaps with centres too
CONTEXT = HP.context_length


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return train([Series("clean", sine_series(3000, columns=2, period=50, noise=0.03))], HP,
                 device=torch.device("cpu")).predictor


def test_fill_gaps_uses_the_one_step_prediction_of_the_filled_series():
    """Against a slow reference: re-read the filled prefix from a zero state for every missing row."""
    torch.manual_seed(0)
    network = LSTMForecaster(NetworkConfig(columns=3, prediction_length=2, hidden_size=5, num_layers=2,
                                           dropout=0.0)).eval()
    series = np.random.default_rng(0).standard_normal((60, 3)).astype(np.float32)
    series[0, 1] = series[10, :] = series[11, 0] = series[12, 2] = series[40, 1] = np.nan
    filled = fill_gaps(network, series.copy())
    reference = series.copy()
    with torch.inference_mode():
        for t in range(len(reference)):
            gaps = np.isnan(reference[t])
            if not gaps.any():
                continue
            if t == 0:
                guess = np.zeros(3, dtype=np.float32)
            else:
                guess = network(torch.from_numpy(reference[None, :t]))[0, -1, 0].numpy()
            reference[t, gaps] = guess[gaps]
    assert not np.isnan(filled).any()
    assert filled[0, 1] == 0.0  # nothing read yet: the training mean
    np.testing.assert_allclose(filled, reference, rtol=1e-5, atol=1e-6)
    observed = ~np.isnan(series)
    np.testing.assert_array_equal(filled[observed], series[observed])


def test_scores_of_complete_rows_far_from_the_gaps_agree_with_the_complete_series(predictor: Predictor):
    complete = sine_series(3000, columns=2, period=50, noise=0.03, seed=4)
    gappy = complete.copy()
    rng = np.random.default_rng(1)
    gappy[500:700][rng.random((200, 2)) < 0.3] = np.nan  # a gappy stretch
    gappy[800:805, :] = np.nan  # rows with nothing observed
    full, holes = predictor.score(complete, attribution=True), predictor.score(gappy, attribution=True)
    # Rows in later chunks (chunk length 1024, warm-up without gaps) are exactly the same ...
    np.testing.assert_array_equal(holes.score[1024:], full.score[1024:])
    # ... and complete rows of the same chunk well after the gaps nearly so (the state forgets).
    later = slice(805 + 5 * CONTEXT, 1024)
    np.testing.assert_allclose(holes.score[later], full.score[later], rtol=0.02, atol=0.05)
    # A row with nothing observed gets an empty score and no attribution, but still a prediction.
    assert np.isnan(holes.score[800:805]).all() and np.isnan(holes.attribution[800:805]).all()
    assert np.isfinite(holes.predictions[800:805]).all()
    # A row with one column missing: a finite (marginal) score, that column's share empty, the other's finite.
    row = 500 + int(np.flatnonzero(np.isnan(gappy[500:700, 0]) & ~np.isnan(gappy[500:700, 1]))[0])
    assert np.isfinite(holes.score[row])
    assert np.isnan(holes.attribution[row, 0]) and np.isfinite(holes.attribution[row, 1])


def test_the_marginal_score_of_a_gappy_row_is_that_of_its_observed_errors(predictor: Predictor):
    from scipy.stats import multivariate_normal

    values = sine_series(400, columns=2, period=50, noise=0.03, seed=5)
    values[300, 1] = np.nan
    errors = predictor.forecast_errors(values).errors.astype(np.float64)
    observed = np.flatnonzero(np.isfinite(errors[300]))
    assert observed.tolist() == [0, 2]  # column 1 at both horizons (entry h*d + j)
    g, centres = predictor.error_model.gaussian, predictor.error_model.centres
    assert centres is not None and len(centres) > 100
    marginal = multivariate_normal(np.zeros(len(observed)), g.cov[np.ix_(observed, observed)])
    # The error model's: the marginal of the Gaussian at the centre nearest the row completed by the conditional
    # mean of its missing entries (the slow loop of test_nearest.py).
    nearest = slow_nearest(predictor.error_model, errors[300:301])[0]
    expected = marginal.logpdf(errors[300, observed] - centres[nearest, observed])
    rows_alone = dataclasses.replace(  # the row's own log-likelihood, no score window
        predictor, error_model=dataclasses.replace(predictor.error_model, window=None))
    np.testing.assert_allclose(rows_alone.score(values).score[300], expected, rtol=1e-9)
    assert predictor.score(values).score[300] <= expected + 1e-9  # the window can only lower it
    # Without centres, the paper's one Gaussian at the mean.
    paper = dataclasses.replace(predictor, error_model=dataclasses.replace(predictor.error_model, window=None,
                                                                           centres=None))
    np.testing.assert_allclose(paper.score(values).score[300],
                               marginal.logpdf(errors[300, observed] - g.mean[observed]), rtol=1e-9)


def test_an_anomaly_inside_a_gappy_stretch_is_still_found(predictor: Predictor):
    values = sine_series(2000, columns=2, period=50, noise=0.03, seed=6)
    values[1300:1310, 0] = 0.9  # a flat segment where a sine should be
    rng = np.random.default_rng(2)
    gaps = rng.random((600, 2)) < 0.2
    gaps[300:310, 0] = False  # the anomalous values themselves are observed
    values[1000:1600][gaps] = np.nan
    result = predictor.score(values, alarm=True, attribution=True)
    assert 1300 <= int(np.nanargmin(result.score)) <= 1312
    assert np.nanmax(result.alarm[1300:1310]) == 1
    worst = 1300 + int(np.nanargmin(result.score[1300:1310]))
    assert result.attribution[worst, 0] > result.attribution[worst, 1] or np.isnan(result.attribution[worst, 1])


def test_training_skips_subsequences_with_gaps_and_says_how_many(caplog: pytest.LogCaptureFixture):
    values = sine_series(1500, columns=2, period=50, noise=0.03, seed=7)
    values[200:260, 1] = np.nan
    values[np.random.default_rng(3).random(1500) < 0.01, 0] = np.nan
    with caplog.at_level(logging.INFO, logger="lstm_ad.training"):
        result = train([Series("gappy", values)], HP, device=torch.device("cpu"))
    summary = result.summary
    assert summary.missing_values == int(np.isnan(values).sum())
    assert summary.skipped_subsequences > 0 and summary.skipped_calibration_rows > 0
    assert "training subsequences" in caplog.text and "contain one and are skipped" in caplog.text
    assert "left out of the Gaussian's fit" in caplog.text
    error_model = result.predictor.error_model
    assert np.isfinite(error_model.gaussian.cov).all() and error_model.alarm_threshold is not None
    scores = result.predictor.score(values).score[CONTEXT:]
    assert np.isfinite(scores[~np.isnan(values[CONTEXT:]).all(axis=1)]).all()  # every row with a value


def test_an_entirely_empty_column_is_a_clear_error():
    values = sine_series(600, columns=3)
    values[:, 2] = np.nan
    with pytest.raises(DataError, match="Column 3 has no values.*every cell is empty.*Remove the column"):
        train([Series("x.csv", values)], HP, device=torch.device("cpu"))


def test_gaps_everywhere_leave_nothing_to_train_on():
    values = sine_series(600, columns=2)
    values[::15, 0] = np.nan  # a gap every 15 rows: no window of 22 rows is complete
    with pytest.raises(DataError, match="Every training subsequence.*contains a missing value"):
        train([Series("x.csv", values)], HP, device=torch.device("cpu"))
