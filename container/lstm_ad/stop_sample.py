"""The stop sample: the rows the error model is fitted on when training was stopped (SIGTERM).

SageMaker kills a training container 120 s after SIGTERM (StopTrainingJob, MaxRuntimeInSeconds, a spot
interruption): a model that is not in /opt/ml/model by then is lost. After a stop, training fits the error model
with the best weights so far (training._finish): the error vectors of every fitting, calibration and validation
row, then the error model's fit (the Gaussian, the centres' search, the score window, the discord term's search,
the threshold). That work grows with the rows and has no bound of its own: on 5 million rows it took 19-77 s on a
busy 2-core machine (scripts/bench_stop.py), and twice the rows take twice as long. So a stopped job fits on a
sample when all the rows would not fit in a time budget:

- the probe (`probe_seconds_per_row`): the error model is fitted on a piece of PROBE_ROWS calibration rows, used
  as both its fitting and its calibration rows, and timed with its error vectors, on this machine under its
  present load. Every row is priced as that: as a calibration row, the dearest kind (its centres' and discord
  search), although most rows are fitting rows, which cost about their error vectors alone. The estimate is an
  upper bound, by several times.
- the budget (`budget_seconds`): BUDGET_S for the rows of all parts; EXPENSIVE_BUDGET_S with error centres or
  several columns, where the probe is least faithful (it draws at most 2 x PROBE_ROWS centres where the job may
  draw more, and the search among them costs in proportion to their count and the error vectors' length).
- the fraction: the budget over (seconds a row x rows available), at most 1; each kind of part (fitting,
  calibration, validation) keeps that fraction of its rows, and at least MIN_ROWS of them (or all it has).
- the blocks (`spread_blocks`): whole contiguous pieces of the parts, of about `block_rows` rows, spread evenly
  over them, the same every time. A block is scored as a request is: its first context-length rows are its
  warm-up, and the score window and the discord subsequences never leave it (as they never leave a request);
  blocks of BLOCK_ROWS rows or more hold the lags up to 2,000 rows that the discord term's period is found in.

The summary records the sample (`StopSample`: model.json's `summary.stop_sample`) and the log says so.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .hyperparameters import Hyperparameters
from .parallel import pooled
from .parallel.collectives import Collective
from .scoring.error_model import ErrorModel

logger = logging.getLogger(__name__)

BUDGET_S = 30.0  # seconds the probe may price the rows of all parts at; SageMaker's kill comes 120 s after SIGTERM
EXPENSIVE_BUDGET_S = 15.0  # with error centres or several columns
PROBE_ROWS = 4096  # scored rows of the probe's piece (after its warm-up)
MIN_ROWS = 10_000  # each kind of part keeps at least this many rows (or all it has)
BLOCK_ROWS = 20_000  # rows of a block, at least (and 10 x context-length)
FALLBACK_SECONDS_PER_ROW = 1e-3  # when the probe's piece has too few complete error vectors to fit


@dataclass(frozen=True)
class Block:
    """Rows [start, stop) of part `part`."""

    part: int
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Roles:
    """This rank's parts of each kind: standardised values (rows, columns), NaN for gaps, each in time order."""

    fitting: list[np.ndarray]
    calibration: list[np.ndarray]
    validation: list[np.ndarray]

    @property
    def rows(self) -> int:
        return sum(len(part) for part in self.fitting + self.calibration + self.validation)

    @property
    def columns(self) -> int:
        parts = self.fitting + self.calibration + self.validation
        return parts[0].shape[1] if parts else 0


@dataclass(frozen=True)
class StopSample:
    """What a stopped job's error model was fitted on; model.json's `summary.stop_sample`."""

    rows: int  # rows of the fitting, calibration and validation parts used (every rank's)
    of: int  # rows available
    budget_s: float
    seconds_per_row: float  # the probe's price of a row (the largest of any rank's)

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def bounded(roles: Roles, hp: Hyperparameters, dimension: int,
            errors_of: Callable[[list[np.ndarray]], list[np.ndarray]], collective: Collective
            ) -> tuple[Roles, StopSample]:
    """The parts a stopped job fits its error model on (this rank's `roles`, or a sample of them) and what was
    taken. `errors_of(parts)`: the parts' error vectors after their warm-up, as training computes them (the
    probe times it). Every rank takes its own sample; the counts are every rank's."""
    seconds = probe_seconds_per_row(roles, hp, dimension, errors_of)
    budget = budget_seconds(hp, roles.columns)
    fraction = sample_fraction(seconds, roles.rows, budget)
    block = block_rows(hp)
    sampled = Roles(*(take(parts, spread_blocks([len(p) for p in parts], kept_rows(sum(map(len, parts)), fraction),
                                                block))
                      for parts in (roles.fitting, roles.calibration, roles.validation)))
    used, available = pooled.count(sampled.rows, collective), pooled.count(roles.rows, collective)
    price = float(max(collective.gather(np.array([seconds]))))
    if used < available:
        blocks = pooled.count(len(sampled.fitting + sampled.calibration + sampled.validation), collective)
        logger.warning("Stopped (SIGTERM): the error model is fitted on a sample of %d of the %d fitting, "
                       "calibration and validation rows (%.1f %%, %d blocks of up to %d rows spread evenly over "
                       "the series), so that the model is written well within the 120 s SageMaker allows after a "
                       "stop (a budget of %.0f s at %.1f µs a row, measured on this machine now).", used, available,
                       100 * used / available, blocks, block, budget, 1e6 * price)
    else:
        logger.info("Stopped (SIGTERM): the error model is fitted on all %d rows (about %.0f s at most, within "
                    "the budget of %.0f s).", available, price * available, budget)
    return sampled, StopSample(used, available, budget, price)


def probe_seconds_per_row(roles: Roles, hp: Hyperparameters, dimension: int,
                          errors_of: Callable[[list[np.ndarray]], list[np.ndarray]]) -> float:
    """Seconds that the error vectors and the error model's fit cost per row of a calibration piece (its first
    context-length + PROBE_ROWS rows of this rank's longest calibration part), on this machine now; 0 when this
    rank has no calibration rows. The piece's rows serve as both fitting and calibration rows; the fit is that
    of one process (no collective), its log lines held back."""
    if not roles.calibration:
        return 0.0
    longest = max(roles.calibration, key=len)
    piece = longest[:hp.context_length + PROBE_ROWS]
    started = time.monotonic()
    errors = errors_of([piece])
    scoring = logging.getLogger("lstm_ad.scoring")
    level = scoring.level
    scoring.setLevel(logging.ERROR)  # the probe's fit is not the job's: its threshold and discord lines would mislead
    try:
        ErrorModel.fit(errors, errors, hp, dimension, Collective(), values=([piece], [piece]))
    except ValueError:  # fewer than 2 complete error vectors in the piece (gaps): price rows high
        return max(FALLBACK_SECONDS_PER_ROW, (time.monotonic() - started) / max(len(piece), 1))
    finally:
        scoring.setLevel(level)
    return (time.monotonic() - started) / len(piece)


def budget_seconds(hp: Hyperparameters, columns: int) -> float:
    """The seconds the probe may price all rows at: less where its price is least sure (see the module doc)."""
    return EXPENSIVE_BUDGET_S if hp.error_centres > 0 or columns > 1 else BUDGET_S


def sample_fraction(seconds_per_row: float, rows: int, budget_s: float) -> float:
    """The share of the rows that fits in the budget at that price; 1 when all of them do."""
    cost = seconds_per_row * rows
    return 1.0 if cost <= budget_s else budget_s / cost


def kept_rows(available: int, fraction: float) -> int:
    """The rows a kind of part keeps: `fraction` of its rows, at least MIN_ROWS (or all it has)."""
    if fraction >= 1:
        return available
    return min(available, max(math.ceil(fraction * available), MIN_ROWS))


def block_rows(hp: Hyperparameters) -> int:
    """A block's rows: many times its warm-up, and enough for the discord term's period (lags up to 2,000)."""
    return max(BLOCK_ROWS, 10 * hp.context_length)


def spread_blocks(lengths: Sequence[int], rows: int, block: int) -> list[Block]:
    """Blocks that hold exactly `rows` rows of parts of `lengths` rows (all of them when they hold no more),
    spread evenly over the parts laid end to end, in order: every part is cut into units of at most `block`
    rows (near-equal, contiguous; a shorter part is one unit); the fewest units taken at even steps that hold
    `rows` rows are chosen, and each is trimmed around its middle, in proportion, to hold exactly `rows`.
    Deterministic; blocks lie inside their parts and do not overlap."""
    if block < 1:
        raise ValueError(f"block must be at least 1 row, got {block}")
    if rows >= sum(lengths):
        return [Block(part, 0, length) for part, length in enumerate(lengths) if length]
    if rows <= 0:
        return []
    units = [unit for part, length in enumerate(lengths) for unit in _units(part, length, block)]

    def chosen(count: int) -> list[Block]:
        return [units[(2 * j + 1) * len(units) // (2 * count)] for j in range(count)]

    low, high = 1, len(units)  # the fewest that hold enough: chosen(len(units)) is every unit
    while low < high:
        middle = (low + high) // 2
        if sum(map(len, chosen(middle))) >= rows:
            high = middle
        else:
            low = middle + 1
    picked = chosen(low)
    held = sum(map(len, picked))
    keep = [len(unit) * rows // held for unit in picked]
    by_remainder = sorted(range(len(picked)), key=lambda i: (-(len(picked[i]) * rows % held), i))
    for i in by_remainder[:rows - sum(keep)]:
        keep[i] += 1
    return [Block(unit.part, unit.start + (len(unit) - k) // 2, unit.start + (len(unit) - k) // 2 + k)
            for unit, k in zip(picked, keep, strict=True) if k]


def _units(part: int, length: int, block: int) -> list[Block]:
    count = math.ceil(length / block)
    if not count:
        return []
    edges = [length * i // count for i in range(count + 1)]
    return [Block(part, a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def take(parts: Sequence[np.ndarray], blocks: Sequence[Block]) -> list[np.ndarray]:
    """The blocks' rows, one array per block (views of the parts)."""
    return [parts[b.part][b.start:b.stop] for b in blocks]
