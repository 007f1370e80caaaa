"""Error-vector construction and chunked scoring, against slow, obviously-correct loops."""

import numpy as np
import pytest
import torch

from lstm_ad.forecast import forecast_errors
from lstm_ad.model import LSTMForecaster, NetworkConfig


def make_network(columns=2, horizon=3, seed=0, hidden_size=6) -> LSTMForecaster:
    torch.manual_seed(seed)
    return LSTMForecaster(NetworkConfig(columns, horizon, hidden_size=hidden_size, num_layers=2, dropout=0.0)).eval()


def prediction_from(network, rows: np.ndarray, horizon: int) -> np.ndarray:
    """Run from a zero state over `rows`; the prediction at `horizon` made after the last row."""
    with torch.no_grad():
        out = network(torch.tensor(rows[None], dtype=torch.float32))
    return out[0, -1, horizon - 1].numpy()


def slow_errors(network, series, context, chunk_length, first_row=0):
    """By the definition: row t of chunk [first, end) is predicted from a zero state at first - context; chunks
    start at multiples of chunk_length in the stream's numbering, where the series starts at row first_row."""
    horizon = network.config.prediction_length
    rows, columns = series.shape
    errors = np.full((rows, horizon * columns), np.nan)
    one_step = np.full((rows, columns), np.nan)
    for t in range(context, rows):
        first = max((t + first_row) // chunk_length * chunk_length - first_row, context)
        start = first - context
        vector = []
        for h in range(1, horizon + 1):  # origin t - h has read rows start .. t - h
            predicted = prediction_from(network, series[start: t - h + 1], h)
            vector.append(series[t] - predicted)
            if h == 1:
                one_step[t] = predicted
        errors[t] = np.concatenate(vector)
    return errors, one_step


@pytest.mark.parametrize(("rows", "context", "chunk_length", "first_row"), [
    (40, 5, 1000, 0), (53, 6, 8, 0), (30, 4, 4, 0), (9, 4, 16, 0), (53, 6, 8, 3), (47, 5, 16, 37)])
def test_error_vectors_match_the_definition(rows, context, chunk_length, first_row):
    network = make_network()
    series = np.random.default_rng(0).standard_normal((rows, 2))
    result = forecast_errors(network, series, context, chunk_length, first_row=first_row)
    expected_errors, expected_one_step = slow_errors(network, series, context, chunk_length, first_row)
    assert result.errors.shape == (rows, 3 * 2)
    assert np.isnan(result.errors[:context]).all() and np.isnan(result.one_step[:context]).all()
    assert result.first_scored_row == min(context, rows)
    np.testing.assert_allclose(result.errors, expected_errors, atol=1e-5)
    np.testing.assert_allclose(result.one_step, expected_one_step, atol=1e-5)


def test_chunked_equals_independent_requests_per_chunk():
    """Chunking = scoring each chunk (with its context rows) as a request of its own."""
    network = make_network(columns=1, horizon=2)
    series = np.random.default_rng(1).standard_normal((500, 1))
    context, length = 10, 64
    chunked = forecast_errors(network, series, context, length).errors
    for first in range(64, 500, 64):
        end = min(first + 64, 500)
        alone = forecast_errors(network, series[first - context: end], context, 10_000).errors
        np.testing.assert_allclose(chunked[first:end], alone[context:], atol=1e-5)


def test_a_stream_request_told_its_first_row_gives_one_long_requests_numbers_bit_for_bit():
    """A live stream's request holds a row and the context + chunk_length - 1 rows before it, and says where it
    starts: the network reads the row's chunk from the same rows as in one long request, so the very same
    float32 numbers come out (on CPU), whether the request spans one chunk or two (the whole series: 30)."""
    network = make_network(columns=1, hidden_size=32)
    series = np.random.default_rng(4).standard_normal((3000, 1))
    context, length = 16, 100
    whole = forecast_errors(network, series, context, length)
    before = context + length - 1
    for t, size in [(before, 1), (1234, 1), (1299, 1), (1300, 1), (2000, 37), (2950, 50), (1111, 100)]:
        first = t - before
        part = forecast_errors(network, series[first:t + size], context, length, first_row=first)
        np.testing.assert_array_equal(part.errors[before:], whole.errors[t:t + size])
        np.testing.assert_array_equal(part.one_step[before:], whole.one_step[t:t + size])


def test_unchunked_is_one_stream_from_the_start():
    network = make_network(columns=1, horizon=1)
    series = np.random.default_rng(2).standard_normal((300, 1))
    result = forecast_errors(network, series, 20, chunk_length=10_000)
    with torch.no_grad():
        stream = network(torch.tensor(series[None], dtype=torch.float32))[0, :, 0, 0].numpy()
    np.testing.assert_allclose(result.one_step[20:, 0], stream[19:-1], atol=1e-5)


def test_grouping_of_chunks_does_not_change_results():
    network = make_network()
    series = np.random.default_rng(3).standard_normal((2000, 2))
    one_group = forecast_errors(network, series, 16, 100, steps_per_batch=1 << 20).errors
    many_groups = forecast_errors(network, series, 16, 100, steps_per_batch=1).errors
    np.testing.assert_allclose(one_group, many_groups, atol=1e-5)
    again = forecast_errors(network, series, 16, 100, steps_per_batch=1 << 20).errors
    np.testing.assert_array_equal(one_group, again)  # deterministic for a given request


def test_series_no_longer_than_context_has_no_scores():
    result = forecast_errors(make_network(), np.zeros((5, 2)), 5, 100)
    assert np.isnan(result.errors).all() and result.first_scored_row == 5


# --- attribution: each column's share of D^2 ------------------------------------------------------


def test_column_shares_of_a_diagonal_gaussian_are_each_columns_squared_standardised_errors():
    """Hand-made: l = 2 horizons x d = 3 columns, independent entries with known variances."""
    from lstm_ad.scoring.attribution import column_shares
    from lstm_ad.scoring.gaussian import Gaussian

    variances = np.array([1.0, 4.0, 0.25, 1.0, 4.0, 0.25])  # horizon-major: h1 (c1, c2, c3), h2 (c1, c2, c3)
    g = Gaussian(mean=np.zeros(6), cov=np.diag(variances))
    e = np.array([[0.0, 4.0, 0.0, 0.0, 2.0, 0.5], [1.0, 0.0, 0.0, 1.0, 0.0, 0.0], [np.nan] * 6])
    shares = column_shares(g.contributions(e), 3)
    np.testing.assert_allclose(shares[:2], [[0.0, 16 / 4 + 4 / 4, 0.5**2 / 0.25], [2.0, 0.0, 0.0]])
    assert np.isnan(shares[2]).all()  # a warm-up row stays empty
    scores = g.log_likelihood(e[:2])
    np.testing.assert_allclose(shares[:2].sum(axis=1), 2 * (g.best_log_likelihood - scores))


def test_column_shares_are_non_negative_and_sum_to_the_distance_with_correlations():
    """Correlated columns: a column whose error breaks the correlation gets a share, none is negative,
    and the shares still add up to D^2 = 2 (best - log N(e; μ, Σ))."""
    from lstm_ad.scoring.attribution import column_shares
    from lstm_ad.scoring.gaussian import Gaussian

    rng = np.random.default_rng(0)
    base = rng.standard_normal((2000, 1))
    errors = np.hstack([base + 0.1 * rng.standard_normal((2000, 1)), base + 0.1 * rng.standard_normal((2000, 1)),
                        rng.standard_normal((2000, 1))])
    g = Gaussian.fit(errors)
    points = np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 3.0], [2.0, 2.0, 0.0]])
    shares = column_shares(g.contributions(points), 3)
    assert (shares >= 0).all()
    np.testing.assert_allclose(shares.sum(axis=1), 2 * (g.best_log_likelihood - g.log_likelihood(points)))
    assert shares[0, :2].min() > 10 * shares[0, 2]  # the two columns that disagree
    assert shares[1, 2] > 10 * shares[1, :2].max()  # the independent column far out
    assert shares[2].sum() < shares[0].sum()  # moving together is far less surprising


def test_an_artifact_without_a_threshold_loads_scores_and_refuses_only_alarms(tmp_path):
    """model.json written before alarm_threshold existed: same scores; alarms need a retrain."""
    import json

    import pytest
    import torch

    from lstm_ad.data import Scaler
    from lstm_ad.errors import UserError
    from lstm_ad.hyperparameters import Hyperparameters
    from lstm_ad.model import LSTMForecaster, NetworkConfig
    from lstm_ad.predictor import Predictor
    from lstm_ad.scoring.error_model import ErrorModel
    from lstm_ad.scoring.gaussian import Gaussian

    torch.manual_seed(0)
    network = LSTMForecaster(NetworkConfig(columns=1, prediction_length=2, hidden_size=4, num_layers=1, dropout=0.0))
    predictor = Predictor(network.eval(), Hyperparameters(context_length=5, prediction_length=2, hidden_size=4,
                                                          num_layers=1),
                          Scaler(np.zeros(1), np.ones(1)),
                          ErrorModel(Gaussian(np.zeros(2), np.eye(2)), alarm_threshold=-3.0), 1024, {})
    predictor.save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["alarm_threshold"] == -3.0
    del meta["alarm_threshold"]
    del meta["hyperparameters"]["alarm-fraction"]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    old = Predictor.load(tmp_path)
    values = np.sin(np.arange(40.0))[:, None]
    assert old.error_model.alarm_threshold is None and old.hyperparameters.alarm_fraction == 0.001
    np.testing.assert_array_equal(old.score(values).score, predictor.score(values).score)
    assert old.score(values, attribution=True).attribution.shape == (40, 1)
    with pytest.raises(UserError, match="retrain"):
        old.score(values, alarm=True)
