"""The discord term against slow, obviously-correct loops and scipy: shapes, nearest distances, the period,
the alignment of a row's subsequence, its independence of where a request starts, the fit, and how it joins
the score."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from lstm_ad.hyperparameters import Hyperparameters
from lstm_ad.scoring.blocks import ROWS_PER_BLOCK, row_blocks
from lstm_ad.scoring.discord import (
    SD_FLOOR,
    SEGMENTS,
    Discord,
    Subsequences,
    dominant_period,
    fit_discord,
    fit_discord_with_distances,
    lag_products,
    nearest_distances,
    shapes,
)
from lstm_ad.scoring.error_model import ErrorModel, rows_read
from lstm_ad.scoring.gaussian import Gaussian
from lstm_ad.scoring.window import Scale, ScoreWindow


def slow_shape(subsequence: np.ndarray) -> np.ndarray:
    """One subsequence (window, columns): per column z-normalised (population std, floored), SEGMENTS means of
    near-equal runs of rows, each weighted by sqrt(its rows / window * SEGMENTS)."""
    window = len(subsequence)
    edges = np.round(np.linspace(0, window, SEGMENTS + 1)).astype(int)
    out = []
    for column in subsequence.T:
        z = (column - column.mean()) / max(column.std(), SD_FLOOR)
        pairs = zip(edges[:-1], edges[1:], strict=True)
        out += [z[a:b].mean() * np.sqrt((b - a) / window * SEGMENTS) for a, b in pairs]
    return np.array(out)


def series(rows: int, period: int = 23, columns: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(rows)[:, None] + np.arange(columns)[None, :] * 5
    return np.sin(2 * np.pi * t / period) + 0.1 * rng.standard_normal((rows, columns))


@pytest.mark.parametrize("window", [8, 13, 40])
def test_shapes_are_z_normalised_piecewise_means(window: int) -> None:
    values = series(120, columns=2) * 3 + 7
    values[50:60, 1] = 2.0  # a flat stretch: its shape stays flat (the floor), not amplified noise
    found = shapes(values, window)
    assert found.shape == (120 - window + 1, 2 * SEGMENTS)
    expected = np.array([slow_shape(values[s:s + window]) for s in range(len(found))])
    np.testing.assert_allclose(found, expected, rtol=1e-9, atol=1e-9)


def test_a_subsequence_with_a_gap_has_no_shape() -> None:
    values = series(60)
    values[30, 0] = np.nan
    found = shapes(values, 10)
    broken = np.isnan(found).any(axis=1)
    assert np.flatnonzero(broken).tolist() == list(range(21, 31))  # every start whose 10 rows hold row 30


def test_nearest_distances_match_scipy() -> None:
    rng = np.random.default_rng(1)
    queries, refs = rng.standard_normal((3000, 16)), rng.standard_normal((300, 16))
    queries[5] = np.nan
    found = nearest_distances(queries, refs)
    expected = cdist(queries, refs).min(axis=1)
    np.testing.assert_allclose(found[np.arange(3000) != 5], expected[np.arange(3000) != 5], rtol=1e-10)
    assert np.isnan(found[5])


def test_lag_products_of_a_part_shorter_than_the_longest_lag_are_the_plain_sums() -> None:
    """Against the definition, on parts of 800 and 3 rows with lags up to 2,000: lags a part does not reach add
    nothing (the FFT's circular autocorrelation there would read negative lags)."""
    parts = [series(800, period=37, seed=9), series(3, seed=10)]
    parts[0][100, 0] = np.nan
    found = lag_products(parts, 2000)
    expected = np.zeros((2, 2001))
    for part in parts:
        x = part[:, 0]
        for lag in range(min(len(x), 2001)):
            pairs = np.isfinite(x[:len(x) - lag]) & np.isfinite(x[lag:])
            expected[0, lag] += np.sum((x[:len(x) - lag] * x[lag:])[pairs])
            expected[1, lag] += pairs.sum()
    np.testing.assert_allclose(found, expected, atol=1e-8)
    assert dominant_period(found) == 37


def test_dominant_period_is_the_sine_period_and_none_without_one() -> None:
    for period in (9, 37, 150):
        assert dominant_period(lag_products([series(6000, period)], 2000)) == period
    assert dominant_period(lag_products([np.linspace(-1, 1, 3000)[:, None]], 2000)) is None  # a trend: no peak
    # Sums over parts add up: two halves give the period of the whole.
    whole = series(6000, 37)
    assert dominant_period(lag_products([whole[:3000], whole[3000:]], 2000)) == 37


@pytest.mark.parametrize("position, before", [("centred", 4), ("trailing", 9)])
def test_a_row_is_scored_by_the_subsequence_around_or_ending_at_it(position: str, before: int) -> None:
    values = series(200)
    refs = shapes(series(400, seed=3), 10)[::7]
    discord = Discord(10, position, refs, Scale(-0.5, 0.3))
    found = discord.distances(values)
    starts = np.arange(200) - before
    inside = (starts >= 0) & (starts + 10 <= 200)
    expected = [cdist(slow_shape(values[s:s + 10])[None], refs).min() if ok else np.nan
                for s, ok in zip(starts, inside, strict=True)]
    np.testing.assert_allclose(found, expected, rtol=1e-9)
    np.testing.assert_allclose(discord.z(values), (-found + 0.5) / 0.3, rtol=1e-12)


def test_a_long_request_is_searched_block_by_block_with_the_same_distances() -> None:
    values = series(2 * ROWS_PER_BLOCK + 100, period=41, seed=7)
    values[ROWS_PER_BLOCK + 3, 0] = np.nan  # a gap whose subsequences straddle a block's edge
    refs = shapes(series(900, period=41, seed=8), 41)[::9]
    whole = shapes(values, 41)
    subsequences = Subsequences(values, 41)
    for block in row_blocks(subsequences.count):
        np.testing.assert_array_equal(subsequences.shapes(block), whole[block])  # bit for bit
    found = Discord(41, "trailing", refs).distances(values)
    expected = cdist(np.nan_to_num(whole, nan=1e9), refs).min(axis=1)
    expected[np.isnan(whole).any(axis=1)] = np.nan
    assert np.isnan(found[:40]).all()  # no subsequence of 41 rows ends there
    np.testing.assert_allclose(found[40:], expected, rtol=1e-9)
    assert np.isnan(found).sum() == 40 + 41  # and the 41 subsequences holding the gap

def test_a_rows_distance_does_not_depend_on_where_its_request_starts() -> None:
    values = series(200_000, period=61) * 1.4  # standardised, as the predictor passes them
    discord = Discord(61, "trailing", shapes(series(5000, period=61, seed=4) * 1.4, 61)[::5], Scale(0, 1))
    whole = discord.distances(values)
    late = discord.distances(values[150_000:])  # a request that starts later: running sums from another origin
    np.testing.assert_allclose(late[60:], whole[150_060:], rtol=0, atol=1e-10)  # measured: 3e-12 at most


def test_fit_takes_the_period_samples_the_refs_and_scales_on_the_calibration_rows() -> None:
    hp = Hyperparameters(discord_refs=500, seed=3)
    fitting = [series(3000, 37), series(1000, 37, seed=1)]
    calibration = [series(800, 37, seed=2)]
    discord = fit_discord(fitting, calibration, [100], hp, collective_of_one())
    assert discord is not None and discord.window == 37 and discord.position == "centred"
    assert discord.refs.shape == (500, SEGMENTS)
    candidates = np.concatenate([shapes(part, 37) for part in fitting])
    assert all(np.isclose(cdist(ref[None], candidates).min(), 0, atol=1e-9) for ref in discord.refs[::50])
    distances = discord.distances(calibration[0])[100:]
    assert discord.scale == Scale.of(-distances)  # the calibration rows after the warm-up, nothing else
    # The distances the fit measured, handed on to the error model's fit so it need not search them again.
    again, measured = fit_discord_with_distances(fitting, calibration, [100], hp, collective_of_one())
    assert again is not None and again.scale == discord.scale and measured is not None and len(measured) == 1
    np.testing.assert_array_equal(measured[0], distances)
    np.testing.assert_array_equal(discord.z_of(measured[0]), discord.z(calibration[0])[100:])
    # Several columns: off unless a window is given.
    two = [np.hstack([part, part]) for part in fitting]
    assert fit_discord(two, [np.hstack([calibration[0]] * 2)], [100], hp, collective_of_one()) is None
    given = fit_discord(two, [np.hstack([calibration[0]] * 2)], [100], dataclasses.replace(hp, discord_window=20),
                        collective_of_one())
    assert given is not None and given.window == 20 and given.refs.shape == (500, 2 * SEGMENTS)
    assert fit_discord(fitting, calibration, [100], dataclasses.replace(hp, discord_refs=0),
                       collective_of_one()) is None


def test_the_score_is_the_lowest_of_the_three_terms_on_the_rows_scale() -> None:
    rng = np.random.default_rng(5)
    gaussian = Gaussian.fit(rng.standard_normal((500, 2)))
    window = ScoreWindow(5, Scale(-2.0, 1.5), Scale(-2.2, 0.6))
    values = series(300)
    discord = Discord(10, "centred", shapes(series(600, seed=6), 10)[::3], Scale(-0.4, 0.2))
    errors = rng.standard_normal((250, 2)) * 1.3
    with_discord = ErrorModel(gaussian, window=window, discord=discord).score(errors, values)
    without = ErrorModel(gaussian, window=window).score(errors)
    z_windowed = (without + 2.0) / 1.5
    z_discord = discord.z(values)[50:]
    lower = z_discord < z_windowed
    assert lower.any() and (~lower).any()
    np.testing.assert_allclose(with_discord, np.where(lower, -2.0 + 1.5 * z_discord, without), rtol=1e-12)
    assert ErrorModel(gaussian, window=window, discord=discord).score(errors).tolist() == without.tolist()


def collective_of_one():
    from lstm_ad.parallel.collectives import Collective

    return Collective()


@pytest.mark.parametrize("window, position, discord, expected", [
    (25, "centred", 0, (12, 12)), (25, "trailing", 0, (24, 0)), (24, "centred", 0, (11, 12)),
    (25, "centred", 50, (24, 25)), (25, "trailing", 50, (49, 0)), (25, "centred", 9, (12, 12)),
    (1, "centred", 0, (0, 0))])
def test_rows_a_score_reads_around_its_row(window: int, position: str, discord: int, expected: tuple[int, int]
                                           ) -> None:
    """The score window's rows and the discord subsequence's (centred: (m-1)//2 before, the rest after)."""
    assert rows_read(window, position, discord) == expected
