"""The discord term: how unlike every normal stretch of the training series the stretch around a row is.

The LSTM's error vectors say how unpredictable a row was. Some anomalies are predictable row by row, yet
their shape is new: a heartbeat a little wider, a cycle with one peak too many. The archive's strongest
simple detectors find those by comparing each subsequence of a series with the others (a "discord" is the
subsequence farthest from its nearest neighbour). Here each row's subsequence of `window` rows is compared
with `refs`, a random sample of the subsequences of the fitting parts (normal data):

    distance(t) = min_j | shape(rows around t) - shape_j |

where a shape is the subsequence z-normalised per column (its own mean and standard deviation removed, so
that only the form counts, not the level or size) and reduced to SEGMENTS means (piecewise aggregate
approximation, each weighted so that the distance approximates the Euclidean distance of the z-normalised
subsequences divided by sqrt(window / SEGMENTS)). The window is by default the dominant period of the
training series (the first peak of its autocorrelation nearly as high as the highest: dominant_period): one
cycle, the unit a shape repeats in.

The distance is measured against its own values on the calibration rows (scale: centre = their median
similarity -distance, spread down to the TAIL_QUANTILE of it; window.py's Scale), and joins the row's score
as a third term: score = row.centre + row.spread * min(z_row, z_window, z_discord) (error_model.py).

Cost: a request of n rows costs O(n) for the shapes (running sums) and n x refs x SEGMENTS x columns
multiply-adds for the nearest reference (nearest_distances). A row's distance barely depends on where its
request starts (the running sums start there: tests/test_discord.py). A row whose subsequence does not fit in
its request, or holds a missing value, has no discord term (NaN): its score is that of the other terms.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
import torch

from ..hyperparameters import Hyperparameters
from ..parallel import pooled
from ..parallel.collectives import Collective
from .blocks import row_blocks
from .window import TAIL_QUANTILE, Scale, rows_around

logger = logging.getLogger(__name__)

SEGMENTS = 8  # piecewise means of a subsequence's shape
MIN_WINDOW = 8
MAX_WINDOW = 2000
SD_FLOOR = 1e-3  # in training standard deviations: a flat subsequence's shape is flat, not amplified noise
MATRIX_ROWS = 256  # queries searched at once: a (rows x refs) block of float32 distances, 1 MB
PEAK_SHARE = 0.9  # an autocorrelation peak this close to the highest is as good a period: the shortest is taken


@dataclass(frozen=True)
class Discord:
    window: int  # rows of each subsequence
    position: str  # window.CENTRED (the subsequence around a row, as the score window) or TRAILING (ending at it)
    refs: np.ndarray  # (refs, columns * SEGMENTS) shapes of subsequences of the fitting parts
    scale: Scale | None = None  # of -distance on the calibration rows; None while fitting

    @property
    def columns(self) -> int:
        return self.refs.shape[1] // SEGMENTS

    def distances(self, values: np.ndarray) -> np.ndarray:
        """(rows,) each row's distance to its nearest reference shape (see the module doc); NaN where the row's
        subsequence does not fit in `values` (rows, columns: standardised) or has a gap."""
        values = np.asarray(values, dtype=np.float64)
        rows = len(values)
        result = np.full(rows, np.nan)
        if rows < self.window:
            return result
        before = subsequence_start(self.window, self.position)
        subsequences = Subsequences(values, self.window)
        for starts in row_blocks(subsequences.count):  # bounded temporaries: a block's shapes are a few MB
            found = nearest_distances(subsequences.shapes(starts), self.refs)
            result[before + starts.start:before + starts.start + len(found)] = found
        return result

    def z(self, values: np.ndarray) -> np.ndarray:
        """Each row's distance on the calibration rows' scale (lower = more unusual), NaN as `distances`."""
        if self.scale is None or not self.scale.spread > 0:
            return np.full(len(values), np.nan)
        return self.z_of(self.distances(values))

    def z_of(self, distances: np.ndarray) -> np.ndarray:
        """`distances` (from `distances`) on the calibration rows' scale; NaN without a usable scale."""
        if self.scale is None or not self.scale.spread > 0:
            return np.full(len(distances), np.nan)
        return (-distances - self.scale.centre) / self.scale.spread

    def to_json(self) -> dict[str, object]:
        return {"window": self.window, "position": self.position, "refs": len(self.refs),
                "scale": None if self.scale is None else self.scale.to_json()}


def subsequence_start(window: int, position: str) -> int:
    """Rows a row's subsequence starts before it: centred as the score window (window.rows_around), or
    trailing (the subsequence ends at the row)."""
    return rows_around(window, position)[0]


def shapes(values: np.ndarray, window: int) -> np.ndarray:
    """(rows - window + 1, columns * SEGMENTS): the shape of every subsequence of `values` (rows, columns), by
    start row; NaN rows for subsequences with a gap. From running sums: O(rows) whatever the window."""
    subsequences = Subsequences(values, window)
    return subsequences.shapes(slice(0, subsequences.count))


class Subsequences:
    """The running sums of a series (rows, columns), from which the shape of any of its subsequences of
    `window` rows costs O(columns * SEGMENTS): `shapes` of a block of start rows equals the same rows of the
    whole series' shapes bit for bit, so a long request is searched block by block."""

    def __init__(self, values: np.ndarray, window: int):
        values = np.asarray(values, dtype=np.float64)
        self.window = window
        self.count = max(len(values) - window + 1, 0)
        missing = np.isnan(values)
        filled = np.where(missing, 0.0, values) if missing.any() else values
        self.gaps = np.concatenate([[0], np.cumsum(missing.any(axis=1))])
        zero = np.zeros((1, values.shape[1]))
        self.sums = np.concatenate([zero, np.cumsum(filled, axis=0)])  # (rows + 1, columns)
        self.squares = np.concatenate([zero, np.cumsum(filled ** 2, axis=0)])
        self.edges = np.round(np.linspace(0, window, SEGMENTS + 1)).astype(int).tolist()
        self.weights = np.sqrt(np.diff(self.edges) / window * SEGMENTS).tolist()

    def shapes(self, starts: slice) -> np.ndarray:
        """(len(starts), columns * SEGMENTS): the shapes of the subsequences starting at rows `starts` (a slice
        of range(count), step 1)."""
        lo, hi = starts.indices(self.count)[:2]
        window, columns = self.window, self.sums.shape[1]
        out = np.empty((max(hi - lo, 0), columns * SEGMENTS))
        for column in range(columns):
            sums, squares = self.sums[:, column], self.squares[:, column]
            mean = (sums[lo + window:hi + window] - sums[lo:hi]) / window
            variance = (squares[lo + window:hi + window] - squares[lo:hi]) / window - mean ** 2
            sd = np.maximum(np.sqrt(np.maximum(variance, 0.0)), SD_FLOOR)
            for k, (a, b) in enumerate(zip(self.edges[:-1], self.edges[1:], strict=True)):
                segment = (sums[lo + b:hi + b] - sums[lo + a:hi + a]) / (b - a)
                out[:, column * SEGMENTS + k] = (segment - mean) / sd * self.weights[k]
        out[self.gaps[lo + window:hi + window] > self.gaps[lo:hi]] = np.nan
        return out


def nearest_distances(queries: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """(queries,) Euclidean distance of each row of `queries` to its nearest row of `refs`; NaN for NaN rows.

    The nearest is found by float32 matrix products over blocks of MATRIX_ROWS rows (|q|^2 - 2 q.r + |r|^2: four
    times the speed of float64 here), then its distance is computed in float64 from the difference itself, so
    that rounding can only choose between references whose squared distances lie within about 1e-6 of each other
    (for a near-copy of a reference, up to a few in a thousand of the distance itself: 0.06 % of the rows of
    scripts/bench_serve.py's series got another reference than an exact float64 search would choose, none
    farther than 0.3 %). A float64 search, or a check of such near-ties, costs about 4x (measured, 2026-12-03)."""
    result = np.full(len(queries), np.nan)
    if not len(refs):
        return result
    complete = np.flatnonzero(np.isfinite(queries).all(axis=1))
    points = torch.from_numpy(np.ascontiguousarray(refs, dtype=np.float32))
    norms = (points ** 2).sum(dim=1)
    found = torch.from_numpy(np.ascontiguousarray(queries[complete], dtype=np.float32))
    nearest = np.empty(len(found), dtype=np.int64)
    for start in range(0, len(found), MATRIX_ROWS):
        block = found[start:start + MATRIX_ROWS]
        # numpy's argmin: torch's is 20-30x slower on CPU for these blocks (torch 2.13, measured)
        nearest[start:start + MATRIX_ROWS] = torch.addmm(norms[None, :], block, points.T, alpha=-2.0).numpy().argmin(1)
    for rows in row_blocks(len(complete)):  # the distance to the one chosen, in float64, bounded temporaries
        chosen = complete[rows]
        result[chosen] = np.sqrt(((queries[chosen] - refs[nearest[rows]]) ** 2).sum(axis=1))
    return result


def lag_products(parts: list[np.ndarray], max_lag: int) -> np.ndarray:
    """(2, max_lag + 1): per lag, the sum of x_t * x_(t+lag) over every part's first column (standardised; a gap
    adds nothing) and how many pairs of present values there are. Sums over parts and ranks add up.

    From the FFT of the part zero-padded to at least twice its length: its circular autocorrelation equals the
    plain one at lags below the part's length; beyond, it would read negative lags (wrapped round), so a part
    adds to lags shorter than itself only (a part of 800 rows once gave a "period" of 802)."""
    sums = np.zeros((2, max_lag + 1))
    for part in parts:
        x = part[:, 0]
        present = np.isfinite(x)
        lags = min(max_lag + 1, len(x))
        for row, series in enumerate((np.where(present, x, 0.0), present.astype(np.float64))):
            size = 1 << int(np.ceil(np.log2(max(2 * len(series), 2))))
            spectrum = np.fft.rfft(series, size)
            sums[row, :lags] += np.fft.irfft(spectrum * np.conj(spectrum), size)[:lags]
    return sums


def dominant_period(products: np.ndarray) -> int | None:
    """The period of the autocorrelation (from lag_products): among its local peaks above 0 at lags in
    [MIN_WINDOW, MAX_WINDOW] with at least 2/3 as many pairs as lag 0, the shortest that reaches PEAK_SHARE of the
    highest (a clean cycle's multiples peak as high as the cycle itself: one cycle is the unit); None without one."""
    sums, pairs = products
    if pairs[0] <= 0 or sums[0] <= 0:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = (sums / pairs) / (sums[0] / pairs[0])
    usable = np.flatnonzero(pairs >= pairs[0] * 2 / 3)
    last = min(int(usable.max()) if len(usable) else 0, len(correlation) - 2)
    lags = np.arange(MIN_WINDOW, last + 1)
    if not len(lags):
        return None
    peaks = lags[(correlation[lags] > correlation[lags - 1]) & (correlation[lags] >= correlation[lags + 1])
                 & (correlation[lags] > 0)]
    if not len(peaks):
        return None
    return int(peaks[correlation[peaks] >= PEAK_SHARE * correlation[peaks].max()][0])


def fit_discord(fitting: list[np.ndarray], calibration: list[np.ndarray], first_scored: list[int],
                hp: Hyperparameters, collective: Collective) -> Discord | None:
    """The discord term of this job, or None when it is off (`discord-refs` 0; `discord-window` 0 on a series
    of several columns; calibration parts too short for one subsequence). `fitting`, `calibration`: this rank's
    standardised parts (rows, columns), NaN for gaps; `first_scored[i]`: the first row of calibration part i
    that is scored (after its warm-up). Every rank gets the same term."""
    return fit_discord_with_distances(fitting, calibration, first_scored, hp, collective)[0]


def fit_discord_with_distances(fitting: list[np.ndarray], calibration: list[np.ndarray], first_scored: list[int],
                               hp: Hyperparameters, collective: Collective
                               ) -> tuple[Discord | None, list[np.ndarray] | None]:
    """fit_discord, and the distances of this rank's calibration parts' scored rows it measured the scale on
    (one array per part, from `first_scored[i]`), so that the error model's fit need not search them again: the
    search is most of the term's cost. (None, None) when the term is off."""
    columns = (fitting + calibration)[0].shape[1] if fitting or calibration else 0
    window = discord_window(fitting, columns, hp, collective)
    if window is None:
        return None, None
    candidates = [np.flatnonzero(np.isfinite(shapes(part, window)).all(axis=1)) if len(part) >= window
                  else np.empty(0, dtype=np.int64) for part in fitting]
    offsets = np.cumsum([0] + [len(c) for c in candidates])
    drawn = pooled.draw(int(offsets[-1]), hp.discord_refs, hp.seed, collective)
    part_of = np.searchsorted(offsets, drawn, side="right") - 1
    mine = [shapes(fitting[p], window)[candidates[p][drawn[part_of == p] - offsets[p]]]
            for p in np.unique(part_of).tolist()]
    refs = pooled.gather_rows(np.concatenate(mine) if mine else np.empty((0, columns * SEGMENTS)), collective)
    unscaled = Discord(window, hp.score_window_position, refs)
    mine_found = [unscaled.distances(part)[first:] for part, first in zip(calibration, first_scored, strict=True)]
    distances = collective.gather(np.concatenate(mine_found or [np.empty(0)]))
    if not len(refs) or not np.isfinite(distances).any():
        logger.warning("Discord term off: no subsequence of %d rows fits in the fitting and calibration parts "
                       "without a gap. Provide longer series or lower `discord-window`.", window)
        return None, None
    scale = Scale.of(-distances)
    logger.info("Discord term: subsequences of %d rows (%s), %d reference shapes from the fitting parts; "
                "calibration rows' distance median %.4g, %g quantile %.4g.", window, hp.score_window_position,
                len(refs), -scale.centre, 1 - TAIL_QUANTILE, scale.spread - scale.centre)
    return dataclasses.replace(unscaled, scale=scale), mine_found


def discord_window(fitting: list[np.ndarray], columns: int, hp: Hyperparameters, collective: Collective
                   ) -> int | None:
    """`discord-window`, or with 0 the dominant period of the fitting parts (one column only), or None: off."""
    if hp.discord_refs == 0:
        return None
    if hp.discord_window:
        return hp.discord_window
    if columns > 1:
        logger.info("Discord term off: `discord-window` 0 finds the period of a series of one column; this one "
                    "has %d. Set `discord-window` to compare subsequences of that many rows of all columns.", columns)
        return None
    period = dominant_period(collective.sum(lag_products(fitting, MAX_WINDOW)))
    if period is None:
        window = int(np.clip(hp.context_length, MIN_WINDOW, MAX_WINDOW))
        logger.info("The fitting parts have no dominant period (no autocorrelation peak above 0 at lags %d-%d): "
                    "the discord term compares subsequences of context-length %d rows.", MIN_WINDOW, MAX_WINDOW,
                    window)
        return window
    logger.info("Dominant period of the fitting parts: %d rows (autocorrelation); the discord term compares "
                "subsequences of that length.", period)
    return period
