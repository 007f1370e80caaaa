"""Each training series split in time, scaled, and checked: the data as the training loop reads it.

The first (1 - calibration-fraction) rows of a series fit the LSTM (its fitting part), the rest calibrate
the error model and decide early stopping (its calibration part, scored after the context-length rows
before it as warm-up, so that every calibration row gets an error vector). The scaler is fitted on the
fitting parts of every rank's files (parallel/pooled.py). The checks refuse, before any work, series that
cannot be trained on, with the fix in the message.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import Scaler, Series, clipped
from .errors import DataError
from .hyperparameters import Hyperparameters
from .parallel import pooled
from .parallel.collectives import Collective

# The Gaussian's dimension l*d: its covariance takes 8*(l*d)^2 bytes and a Cholesky factorisation;
# 4096 is 128 MB, far above what the listing's use needs (SMD: 38 columns x 10 = 380).
MAX_ERROR_DIMENSION = 4096


@dataclass(frozen=True)
class Parts:
    """The training data as the loop reads it, scaled by the scaler of the fitting parts (all ranks')."""

    scaler: Scaler
    fitting: list[np.ndarray]  # each series' first rows: they fit the LSTM
    calibration: list[np.ndarray]  # each series' last rows, after the context-length rows before them (warm-up)
    validation: list[np.ndarray]  # the validation series, clipped as requests are
    calibration_rows: int  # rows of the calibration parts after their warm-up

    @property
    def columns(self) -> int:
        return self.fitting[0].shape[1]


def split_point(rows: int, calibration_fraction: float) -> int:
    """First row of the calibration part."""
    return rows - max(1, int(round(rows * calibration_fraction)))


def minimum_rows(hp: Hyperparameters) -> int:
    """The shortest training series whose fitting part holds one subsequence."""
    rows = hp.context_length + hp.prediction_length
    while split_point(rows, hp.calibration_fraction) < hp.context_length + hp.prediction_length:
        rows += 1
    return rows


def check_lengths(series: list[Series], hp: Hyperparameters) -> None:
    """Every fitting part must hold at least one training subsequence."""
    needed = hp.context_length + hp.prediction_length
    for s in series:
        rows = len(s.values)
        fit_rows = split_point(rows, hp.calibration_fraction)
        if fit_rows < needed:
            raise DataError(
                f"{s.name}: has {rows} rows; its fitting part (the first {1 - hp.calibration_fraction:.0%}, "
                f"{fit_rows} rows) is shorter than context-length + prediction-length = {needed}. "
                f"Provide a longer series (at least {minimum_rows(hp)} rows) or lower `context-length`."
            )


def check_error_dimension(columns: int, hp: Hyperparameters) -> None:
    """The Gaussian's covariance is (l*d)^2 numbers: refuse a size that cannot be fitted, before any work."""
    dimension = hp.prediction_length * columns
    if dimension > MAX_ERROR_DIMENSION:
        raise DataError(
            f"The error model would have {dimension} dimensions (prediction-length {hp.prediction_length} x "
            f"{columns} columns); at most {MAX_ERROR_DIMENSION} can be fitted. Lower `prediction-length` to at "
            f"most {max(1, MAX_ERROR_DIMENSION // columns)} or train on fewer columns."
        )


def check_scaler(scaler: Scaler, series: list[Series], hp: Hyperparameters) -> None:
    """Values so large that a column's mean or spread overflows float64 would give a model that ignores it;
    a column with no value at all in the fitting parts cannot be learnt."""
    empty = np.flatnonzero(np.isnan(scaler.mean))
    if len(empty):
        raise DataError(
            f"Column {int(empty[0]) + 1} has no values in the fitting part (the first "
            f"{1 - hp.calibration_fraction:.0%}) of any training file: every cell is empty. Remove the column "
            "(from training and from every request) or provide data where it was measured."
        )
    bad = np.flatnonzero(~(np.isfinite(scaler.mean) & np.isfinite(scaler.std)))
    if len(bad):
        column = int(bad[0])
        largest = max(float(np.nanmax(np.abs(s.values[:, column]))) for s in series)
        raise DataError(
            f"Column {column + 1}: values as large as {largest:.3g} make its mean or standard deviation overflow "
            "(float64). Rescale that column (for example to other units) before training."
        )


def check_series(series: list[Series], validation: list[Series] | None, hp: Hyperparameters) -> None:
    """Everything about the series' sizes that makes training impossible, before any work."""
    check_lengths(series, hp)
    check_error_dimension(series[0].values.shape[1], hp)
    if validation:
        check_validation_lengths(validation, hp)


def check_validation_lengths(series: list[Series], hp: Hyperparameters) -> None:
    for s in series:
        if len(s.values) <= hp.context_length:
            raise DataError(
                f"{s.name}: has {len(s.values)} rows, but the first context-length ({hp.context_length}) "
                f"rows are warm-up; a validation series needs at least {hp.context_length + 1} rows."
            )


def split_and_scale(series: list[Series], validation: list[Series] | None, hp: Hyperparameters,
                    collective: Collective) -> Parts:
    """Split each series into its fitting and calibration parts, and scale every part."""
    splits = [split_point(len(s.values), hp.calibration_fraction) for s in series]
    scaler = pooled.fit_scaler([s.values[:cut] for s, cut in zip(series, splits, strict=True)], collective)
    check_scaler(scaler, series, hp)
    fitting = [scaler.transform(s.values[:cut]) for s, cut in zip(series, splits, strict=True)]
    # Calibration parts are scored as requests whose warm-up is the tail of the fitting part,
    # so every calibration row gets an error vector.
    calibration = [scaler.transform(s.values[max(0, cut - hp.context_length):])
                   for s, cut in zip(series, splits, strict=True)]
    # Validation series are scored as requests are: clipped to the same bound (Predictor.standardise).
    validation_parts = [clipped(scaler.transform(s.values)) for s in validation or []]
    calibration_rows = sum(len(s.values) - cut for s, cut in zip(series, splits, strict=True))
    return Parts(scaler, fitting, calibration, validation_parts, calibration_rows)
