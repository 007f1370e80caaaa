"""The score window: a row's score is its own log-likelihood (centres.py), or the mean log-likelihood of the
window of `score-window` rows around it when that mean is the more unusual of the two.

Why: a per-row log-likelihood is dominated by single hard-to-predict normal rows, while an anomaly
that lasts a few dozen rows, each a little off, never scores below them; the mean over a short
window finds those, and a mean alone loses anomalies of a row or two. Taking the more unusual of
the two kept both kinds (docs/benchmarks.md, "Score window": on the 40 ucr-dev series, UCR accuracy
0.692 against 0.650 for the row alone over 3 seeds through `train`, and no seed worse in 5 offline;
smd-dev AUC-PR 0.468 against 0.381).

"More unusual" needs a common scale. Each of the two is measured against its own values on the
calibration rows (normal data the LSTM never fitted): centre = their median, spread = median minus
their 0.001 quantile (the lower tail, where anomalies lie). With z = (value - centre) / spread,

    score = row.centre + row.spread * min(z_row, z_window)

so the score is in the row's log-likelihood units, and on every row whose own term is the lower it
IS the row's log-likelihood. The window is centred: rows t - (w - 1) // 2 .. t + w // 2 of the same
request (12 before and 12 after for w = 25; for an even w, one more after than before), so that the
lowest scores sit on an anomaly rather than after it (a trailing window found as many UCR anomalies,
but its lowest scores trailed them by up to w - 1 rows). Rows without a score (warm-up, every value
missing) are left out of the windows and stay empty. Near either end of a request a window holds
fewer rows, n < w, and its mean varies more: its spread is widened by sqrt(w / n), as for a mean of
n independent rows, so that the ends of a request do not alarm more than its middle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .blocks import row_blocks

TAIL_QUANTILE = 0.001  # the spread reaches from the median down to this quantile of the calibration values
CENTRED, TRAILING = "centred", "trailing"
POSITIONS = (CENTRED, TRAILING)


@dataclass(frozen=True)
class Scale:
    """Where a kind of value sits on the calibration rows: z = (value - centre) / spread."""

    centre: float
    spread: float

    @classmethod
    def of(cls, values: np.ndarray, weights: np.ndarray | None = None) -> Scale:
        """Of `values`; with `weights`, each value's deviation from the centre is multiplied by its weight
        before the quantile is taken (the means of partial windows, brought to the spread of full ones)."""
        kept = np.isfinite(values)
        finite = values[kept]
        centre = float(np.median(finite))
        deviations = finite - centre if weights is None else (finite - centre) * weights[kept]
        return cls(centre, -float(np.quantile(deviations, TAIL_QUANTILE)))

    def to_json(self) -> dict[str, float]:
        return {"centre": self.centre, "spread": self.spread}

    @classmethod
    def from_json(cls, data: dict[str, float]) -> Scale:
        return cls(float(data["centre"]), float(data["spread"]))


@dataclass(frozen=True)
class ScoreWindow:
    """`window` rows, and the scales of the row's log-likelihood and of the window's mean (see above).

    A window of 1 row, or a spread that is not positive (calibration values all alike), leaves the
    row's log-likelihood as the score."""

    window: int
    row: Scale
    mean: Scale
    position: str = CENTRED  # CENTRED or TRAILING (window_means); an artifact from before the choice: centred

    @classmethod
    def fit(cls, window: int, row_scores: np.ndarray, means: np.ndarray, counts: np.ndarray,
            position: str = CENTRED) -> ScoreWindow:
        """From the calibration rows' log-likelihoods and their window means and counts (`window_means` of
        each calibration part: windows never straddle two parts, as they never straddle two requests)."""
        return cls(window, Scale.of(row_scores), Scale.of(means, np.sqrt(counts / window)), position)

    @property
    def active(self) -> bool:
        return self.window > 1 and self.row.spread > 0 and self.mean.spread > 0

    def __call__(self, log_likelihood: np.ndarray) -> np.ndarray:
        """The scores of one request's rows (or one calibration part's), in time order."""
        log_likelihood = np.asarray(log_likelihood, dtype=np.float64)
        if not self.active:
            return log_likelihood
        z_row = (log_likelihood - self.row.centre) / self.row.spread
        means, counts = window_means(log_likelihood, self.window, self.position)
        # A mean of fewer rows (near either end of a request) varies more: its spread grows as 1/sqrt(rows).
        with np.errstate(invalid="ignore", divide="ignore"):
            z_mean = (means - self.mean.centre) / (self.mean.spread * np.sqrt(self.window / counts))
        # The row's own value where its term is the lower (exactly, not rebuilt from z); NaN stays NaN.
        return np.where(z_mean < z_row, self.row.centre + self.row.spread * z_mean, log_likelihood)

    def to_json(self) -> dict[str, object]:
        return {"window": self.window, "position": self.position, "row": self.row.to_json(),
                "mean": self.mean.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> ScoreWindow:
        position = str(data.get("position", CENTRED))
        if position not in POSITIONS:
            raise ValueError(f"score window position {position!r}, expected one of {', '.join(POSITIONS)}")
        return cls(int(data["window"]), Scale.from_json(data["row"]), Scale.from_json(data["mean"]), position)


def rows_around(window: int, position: str = CENTRED) -> tuple[int, int]:
    """(rows before, rows after) a row in its window of `window` rows: centred, (window - 1) // 2 before and
    window // 2 after; trailing, window - 1 before and none after (the row's score is final when returned)."""
    return (window - 1, 0) if position == TRAILING else ((window - 1) // 2, window // 2)


def window_means(values: np.ndarray, window: int, position: str = CENTRED) -> tuple[np.ndarray, np.ndarray]:
    """For every row t: the mean of the finite values among the rows of its window (rows_around: centred,
    t - (window - 1) // 2 .. t + window // 2; trailing, t - window + 1 .. t; rows beyond either end are absent;
    NaN where there are none), and how many values it is of.

    Each mean is summed from its own window's values (not from running totals), so a row's result
    depends on those values alone, bit for bit: a gap or an extreme value elsewhere in the request
    cannot change it by rounding."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    windows = _windows(np.where(finite, values, 0.0), window, position)
    counts = _windows(finite.astype(np.float64), window, position)
    means, n = np.full(len(values), np.nan), np.zeros(len(values))
    for block in row_blocks(len(values)):  # bounded temporaries for long requests
        n[block] = counts[block].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[block] = np.where(n[block] > 0, windows[block].sum(axis=1) / n[block], np.nan)
    return means, n


def _windows(values: np.ndarray, window: int, position: str) -> np.ndarray:
    """(rows, window) view: row t holds rows t - before .. t + after, zeros beyond the ends."""
    before, after = rows_around(window, position)
    return sliding_window_view(np.concatenate([np.zeros(before), values, np.zeros(after)]), window)
