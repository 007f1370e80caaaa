"""The alarm threshold: a rule on the calibration rows' scores, stored with the model.

`alarm-fraction` q reads as a false-alarm rate on new normal rows, and the rule is built for that. The
calibration rows are a few hundred to a few thousand scores; their empirical q-quantile at q = 0.001 is one or
two order statistics, and new rows score lower than them anyway: the network stopped early on them, the
Gaussian and the score window's scales were fitted on them, and a series drifts after its training part. On
the 70 UCR series of half A (scripts/bench_quality.py's split, seeds 0-2; docs/benchmarks.md, "Alarms") that
quantile let 3.2 % of new normal rows alarm at q = 0.001 (median over series: 32x), 5.1 % at q = 0.01.

Rule: with m the median of the calibration scores and u = m - (their 0.01 quantile), the threshold is

    m - u * (TAIL_SHIFT + ln(0.5 / q) / ln(50))

the q-quantile of an exponential lower tail through the median and the 1 % quantile (ln 50 = ln(0.5 / 0.01)),
moved down by TAIL_SHIFT units u for the gap between calibration rows and new rows. Two robust quantiles set
it, so small q extrapolates the tail instead of reading the last order statistic. TAIL_SHIFT was chosen on half
A (on 52 of its 70 series, while the run went on) and confirmed once on half B: median false-alarm rates 2.9x q
at q = 0.001 and 1.1x at q = 0.01 there (5.3x and 1.6x on the whole of half A; docs/benchmarks.md, "Alarms").
A row alarms when its score is strictly below the threshold.
"""

from __future__ import annotations

import math

import numpy as np

TAIL_SHIFT = 0.5  # units u: chosen on half A of the 140 UCR series (docs/benchmarks.md, "Alarms")
BODY_QUANTILE = 0.01  # the tail's second anchor, beside the median


def alarm_threshold(scores: np.ndarray, fraction: float, shift: float = TAIL_SHIFT) -> float:
    """The stored threshold of the rule above (`shift`: TAIL_SHIFT; other values for the comparisons of
    scripts/bench_rescore.py and bench_answers.py); `scores` must hold at least one finite value."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    scores = scores[np.isfinite(scores)]
    if not len(scores):
        raise ValueError("no finite scores to set an alarm threshold on")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"alarm fraction must be in (0, 1), got {fraction}")
    median = float(np.median(scores))
    unit = median - float(np.quantile(scores, BODY_QUANTILE))
    return median - unit * (shift + math.log(0.5 / fraction) / math.log(0.5 / BODY_QUANTILE))


def alarms(scores: np.ndarray, threshold: float) -> np.ndarray:
    """1.0 where score < threshold, 0.0 elsewhere, NaN where the score is NaN (warm-up rows)."""
    scores = np.asarray(scores, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        flags = (scores < threshold).astype(np.float64)
    flags[np.isnan(scores)] = np.nan
    return flags
