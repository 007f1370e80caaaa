"""Fitting LSTM-AD: split, scale, fit the LSTM, calibrate the Gaussian.

Each training series is split in time: the first (1 - calibration-fraction) rows fit
the LSTM, the rest calibrate the Gaussian error model and decide early stopping.
The LSTM is fitted on subsequences of context-length + prediction-length rows that
start every sequence-stride rows of a fitting part (never crossing a file boundary):
it reads the first context-length rows from a zero state, and the loss is the MSE of
every l-step prediction made after a short burn-in against the true future rows.

Missing values (NaN, from empty cells): subsequences that contain one (in their inputs or
their targets) are skipped, the scaler ignores them, the calibration and validation parts
are scored as requests are (gaps read as the network's own prediction, forecast.py), and the
Gaussian is fitted to the complete error vectors only. The log says how much was left out.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import pooled
from .adam import Adam
from .checkpoint import Checkpointer, TrainingState
from .data import Scaler, Series
from .data_parallel import DataParallel
from .distributed import Collective, Share
from .errors import DataError, TrainingStopped, UserError
from .forecast import default_chunk_length, forecast_errors
from .hyperparameters import Hyperparameters
from .model import LSTMForecaster, NetworkConfig
from .nearest import NearestGaussian
from .predictor import MAX_STANDARDISED, Predictor, network_config
from .sharding import shard_count, single_threaded_kernels
from .threshold import alarm_threshold

logger = logging.getLogger(__name__)

# The Gaussian's dimension l*d: its covariance takes 8*(l*d)^2 bytes and a Cholesky factorisation;
# 4096 is 128 MB, far above what the listing's use needs (SMD: 38 columns x 10 = 380).
MAX_ERROR_DIMENSION = 4096


@dataclass(frozen=True)
class EpochReport:
    """What one epoch did, handed to the caller's `on_epoch` (the shell prints it as metric lines)."""

    epoch: int
    train_mse: float  # the training loss (with dropout, if any), standardised units
    train_mae: float
    calibration_mse: float  # the early-stopping criterion
    valid_mse: float | None = None  # with a validation channel
    valid_mae: float | None = None


@dataclass(frozen=True)
class TrainingSummary:
    """What happened; stored in model.json as the artifact's `summary`."""

    epochs_run: int
    best_epoch: int
    stopped_early: bool  # early stopping
    interrupted: bool  # stop requested (SIGTERM)
    calibration_rows: int  # complete error vectors the Gaussian was fitted to
    metrics: dict[str, float]  # final: train:mse, train:mae, calibration:mse (+ valid:mse, valid:mae), alarm:threshold

    missing_values: int = 0  # empty cells in the training series
    skipped_subsequences: int = 0  # training subsequences left out because they contain a missing value
    skipped_calibration_rows: int = 0  # calibration rows without a complete error vector (not fitted)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingResult:
    predictor: Predictor
    summary: TrainingSummary


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


def check_validation_lengths(series: list[Series], hp: Hyperparameters) -> None:
    for s in series:
        if len(s.values) <= hp.context_length:
            raise DataError(
                f"{s.name}: has {len(s.values)} rows, but the first context-length ({hp.context_length}) "
                f"rows are warm-up; a validation series needs at least {hp.context_length + 1} rows."
            )


def select_device() -> torch.device:
    """The GPU when there is one, else the CPU (multi-GPU: wrap the network here later)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class SubsequenceSampler:
    """All training subsequences as (series offset + start) indices into one flat tensor."""

    def __init__(self, parts: list[np.ndarray], hp: Hyperparameters, device: torch.device):
        self.window = hp.context_length + hp.prediction_length
        self.flat = torch.from_numpy(np.concatenate(parts).astype(np.float32)).to(device)
        starts, offset, self.skipped = [], 0, 0
        for part in parts:
            first = np.arange(0, len(part) - self.window + 1, hp.sequence_stride)
            gaps = np.r_[0, np.cumsum(np.isnan(part).any(axis=1))]  # rows with a gap before each row
            complete = gaps[first + self.window] == gaps[first]
            self.skipped += int((~complete).sum())
            starts.append(offset + first[complete])
            offset += len(part)
        self.flat = torch.nan_to_num(self.flat)  # NaN only in skipped windows; keep them out of any arithmetic
        self.starts = torch.from_numpy(np.concatenate(starts)).to(device)
        self.steps = torch.arange(self.window, device=device)

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        """(batch, context + prediction length, columns) subsequences."""
        return self.flat[self.starts[indices, None] + self.steps]


def subsequence_loss(network: torch.nn.Module, windows: torch.Tensor, hp: Hyperparameters
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """MSE and MAE of all predictions made after the burn-in against the true future rows."""
    c, horizon = hp.context_length, hp.prediction_length
    predictions = network(windows[:, :c])  # (batch, c, horizon, columns)
    # Row t+h is the target of step t at horizon h: windows[:, t+1 : t+1+horizon]
    targets = windows[:, 1:].unfold(1, horizon, 1).permute(0, 1, 3, 2)  # (batch, c, horizon, columns)
    diff = predictions[:, hp.burn_in:] - targets[:, hp.burn_in:]
    return diff.square().mean(), diff.abs().mean()


def streaming_errors(network: LSTMForecaster, parts: list[np.ndarray], hp: Hyperparameters,
                     chunk_length: int) -> np.ndarray:
    """Complete error vectors of every scorable row of every part, scored as at inference (rows whose
    error vector misses an entry, because the row has a gap, are left out)."""
    return complete_rows(part_errors(network, parts, hp, chunk_length), network.config)


def complete_rows(found: list[np.ndarray], config: NetworkConfig) -> np.ndarray:
    """The error vectors of `found` (one array per part) that miss no entry, in one float64 array."""
    if not found:  # a rank with no file of its own in a distributed job
        return np.empty((0, config.prediction_length * config.columns))
    return np.concatenate([e[np.isfinite(e).all(axis=1)] for e in found]).astype(np.float64)


def part_errors(network: LSTMForecaster, parts: list[np.ndarray], hp: Hyperparameters,
                chunk_length: int) -> list[np.ndarray]:
    """Each part's error vectors after its warm-up, as inference computes them (float32; NaN entries where a
    value is missing).

    On CPU on one torch thread, whatever the caller's setting: splitting LSTM-AD's small matrix products
    over threads is 3-6x slower on a quiet machine, 45-120x with other processes running (bench_startup.py).
    """
    network.eval()
    with single_threaded_kernels(next(network.parameters()).device.type == "cpu"):
        found = [forecast_errors(network, part, hp.context_length, chunk_length) for part in parts]
    return [f.errors[f.first_scored_row:] for f in found]


def pooled_mse_mae(network: LSTMForecaster, parts: list[np.ndarray], share: Share, hp: Hyperparameters,
                   chunk_length: int, collective: Collective) -> tuple[float, float]:
    """MSE and MAE of the parts' error vectors over every rank (each scores the parts of `share` it owns)."""
    return pooled.mse_mae(streaming_errors(network, share.mine(parts), hp, chunk_length), collective)


def train(
    series: list[Series],
    hp: Hyperparameters,
    validation: list[Series] | None = None,
    device: torch.device | None = None,
    checkpoint_dir: Path | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
    on_epoch: Callable[[EpochReport], None] = lambda report: None,
    collective: Collective | None = None,
) -> TrainingResult:
    """Fit LSTM-AD to `series`; returns the predictor and what happened.

    `stop_requested` is polled before every mini-batch; `on_epoch` hears of every epoch. In a job of
    several ranks (`collective`, distributed.py) `series` are this rank's files, every rank returns the
    same predictor, and only rank 0 writes checkpoints.
    """
    collective = collective or Collective()
    check_lengths(series, hp)
    check_error_dimension(series[0].values.shape[1], hp)
    if validation:
        check_validation_lengths(validation, hp)
    device = device or select_device()
    torch.manual_seed(hp.seed)
    splits = [split_point(len(s.values), hp.calibration_fraction) for s in series]
    scaler = pooled.fit_scaler([s.values[:cut] for s, cut in zip(series, splits, strict=True)], collective)
    check_scaler(scaler, series, hp)
    fit_parts = [scaler.transform(s.values[:cut]) for s, cut in zip(series, splits, strict=True)]
    # Calibration parts are scored as requests whose warm-up is the tail of the fitting part,
    # so every calibration row gets an error vector.
    calibration_parts = [scaler.transform(s.values[max(0, cut - hp.context_length):])
                         for s, cut in zip(series, splits, strict=True)]
    # Validation series are scored as requests are: clipped to the same bound (Predictor.standardise).
    validation_parts = [np.clip(scaler.transform(s.values), -MAX_STANDARDISED, MAX_STANDARDISED)
                        for s in validation or []]
    columns = series[0].values.shape[1]
    chunk_length = default_chunk_length(hp.context_length)

    network = LSTMForecaster(network_config(hp, columns)).to(device)
    sampler = SubsequenceSampler(fit_parts, hp, device)
    share = collective.training
    missing_values = pooled.share_count(int(sum(np.isnan(s.values).sum() for s in series)), collective, share)
    subsequences = pooled.share_count(len(sampler), collective, share)
    skipped = pooled.share_count(sampler.skipped, collective, share)
    if missing_values:
        total = subsequences + skipped
        cells = pooled.share_count(sum(s.values.size for s in series), collective, share)
        logger.info("Missing values: %d empty cells in the training series (%.2f %% of all cells); %d of %d "
                    "training subsequences (%.1f %%) contain one and are skipped.", missing_values,
                    100 * missing_values / cells, skipped, total, 100 * skipped / max(total, 1))
    if subsequences == 0:
        raise DataError(f"Every training subsequence ({skipped} of {hp.context_length} + "
                        f"{hp.prediction_length} rows) contains a missing value: there is nothing to train on. "
                        "Provide stretches without gaps at least that long, or lower `context-length`.")
    shards = shard_count(device, hp.batch_size, hp.dropout) if collective.size == 1 else 1
    logger.info("Training on %s: %d series, %d columns, %d fitting rows, %d calibration rows, "
                "%d subsequences per epoch, %d parameters, mini-batches in %d shard(s) on each of %d rank(s)",
                device, len(series), columns, sum(map(len, fit_parts)),
                sum(len(s.values) - cut for s, cut in zip(series, splits, strict=True)), subsequences,
                sum(p.numel() for p in network.parameters()), shards, collective.size)
    optimizer = Adam(network.parameters(), lr=hp.lr)
    checkpointer = Checkpointer(checkpoint_dir, hp, columns) if checkpoint_dir else None
    state = (checkpointer.load(network, optimizer) if checkpointer else None) or TrainingState.fresh(hp.seed)
    check_same_start(state.epoch, collective)
    if not collective.rank.is_master:
        checkpointer = None  # rank 0 alone writes checkpoints; every rank resumes from its copy

    interrupted = False
    window_shape = (hp.context_length + hp.prediction_length, columns)
    with single_threaded_kernels(shards > 1), \
            DataParallel(network, collective, len(sampler), window_shape, shards) as parallel:
        while state.epoch < hp.epochs and not state.patience_exhausted(hp.early_stopping_patience):
            started = time.monotonic()
            epoch_loss = _run_epoch(network, parallel, optimizer, sampler, hp, state, stop_requested)
            if epoch_loss is None:
                interrupted = True
                break
            state.epoch += 1
            calibration_mse, _ = pooled_mse_mae(network, calibration_parts, share, hp, chunk_length, collective)
            state.record(calibration_mse, network)
            best = " (best)" if state.best_epoch == state.epoch else ""
            logger.info("epoch %d/%d done in %.1fs%s", state.epoch, hp.epochs, time.monotonic() - started, best)
            valid_mse = valid_mae = None
            if validation_parts:
                valid_mse, valid_mae = pooled_mse_mae(network, validation_parts, collective.validation, hp,
                                                      chunk_length, collective)
            on_epoch(EpochReport(state.epoch, *epoch_loss, calibration_mse, valid_mse, valid_mae))
            if checkpointer:
                checkpointer.save(network, optimizer, state)
            if parallel.stop(stop_requested):
                interrupted = True
                break

    if state.best_state is None:
        raise TrainingStopped("Training was stopped before the first epoch completed.")
    network.load_state_dict(state.best_state)
    network.eval()
    started = time.monotonic()
    result = _finish(network, hp, scaler, chunk_length, fit_parts, calibration_parts, validation_parts,
                     state, interrupted, missing_values, skipped, collective)
    logger.info("Calibration and final metrics done in %.2fs", time.monotonic() - started)
    return result


def check_same_start(epoch: int, collective: Collective) -> None:
    """Every rank must resume from the same epoch (each host reads its own copy of the checkpoints)."""
    epochs = collective.gather_ints(epoch)
    if len(set(epochs)) > 1:
        raise DataError(f"The ranks of this job resume from different epochs ({epochs}, in rank order): every "
                        "host must see the same checkpoint. Resume with the same host count and checkpoint "
                        "location, or remove the checkpoints to start afresh.")


def _run_epoch(network: LSTMForecaster, parallel: DataParallel, optimizer: Adam,
               sampler: SubsequenceSampler, hp: Hyperparameters, state: TrainingState,
               stop_requested: Callable[[], bool]) -> tuple[float, float] | None:
    """One pass over the shuffled subsequences (of every rank); None when a stop was requested mid-epoch."""
    network.train()
    order = torch.randperm(parallel.total, generator=state.generator).to(sampler.starts.device)
    total_mse = total_mae = 0.0
    for first in range(0, len(order), hp.batch_size):
        if parallel.stop(stop_requested):
            return None
        batch = order[first:first + hp.batch_size]
        windows = sampler.batch(parallel.mine(batch))
        mse, mae = parallel.gradient(lambda net, w: subsequence_loss(net, w, hp), windows, len(batch))  # sets .grad
        torch.nn.utils.clip_grad_norm_(network.parameters(), max_norm=5.0, foreach=True)
        optimizer.step()
        total_mse += mse
        total_mae += mae
    total_mse, total_mae = parallel.epoch_sums(total_mse, total_mae)
    if not math.isfinite(total_mse):
        raise UserError(f"Training diverged: the loss became {total_mse} in epoch {state.epoch + 1}. "
                        f"Lower `lr` (now {hp.lr:g}).")
    return total_mse / len(order), total_mae / len(order)


def _finish(network: LSTMForecaster, hp: Hyperparameters, scaler: Scaler, chunk_length: int,
            fit_parts: list[np.ndarray], calibration_parts: list[np.ndarray],
            validation_parts: list[np.ndarray], state: TrainingState, interrupted: bool,
            missing_values: int, skipped_subsequences: int, collective: Collective) -> TrainingResult:
    """Calibrate the error model (Gaussian, centres, score window, alarm threshold) with the best weights,
    compute the final metrics."""
    calibration_parts = collective.training.mine(calibration_parts)  # this rank's files; sums over all ranks
    calibration_found = part_errors(network, calibration_parts, hp, chunk_length)  # gap rows too, in time order
    calibration_errors = complete_rows(calibration_found, network.config)
    calibration_rows = pooled.count(len(calibration_errors), collective)
    calibration_total = pooled.count(sum(max(0, len(part) - hp.context_length) for part in calibration_parts),
                                     collective)
    skipped_calibration = calibration_total - calibration_rows
    if skipped_calibration:
        logger.info("Calibration: %d of %d calibration rows (%.1f %%) have a gap in their error vector and are "
                    "left out of the Gaussian's fit.", skipped_calibration, calibration_total,
                    100 * skipped_calibration / max(calibration_total, 1))
    dimension = calibration_errors.shape[1]
    if calibration_rows < 2:
        raise DataError(f"Only {calibration_rows} calibration rows: raise `calibration-fraction` "
                        "or provide longer series.")
    if calibration_rows < 10 * dimension:
        logger.warning("Only %d calibration rows for a %d-dimensional error model (about %d recommended): "
                       "scores may be unreliable. Provide more data or raise `calibration-fraction`.",
                       calibration_rows, dimension, 10 * dimension)
    gaussian = pooled.fit_gaussian(calibration_errors, collective)
    fitting_found = part_errors(network, collective.training.mine(fit_parts), hp, chunk_length)
    centres, own = pooled.sample_centres(fitting_found, calibration_found, hp.error_centres, hp.seed, collective)
    error_model = NearestGaussian(gaussian, centres)
    # A calibration row is scored without its own vector among the centres: as a new row would be.
    row_scores = [error_model.log_likelihood(errors, None if own is None else own[index])  # gap rows: marginal
                  for index, errors in enumerate(calibration_found)]
    windowed = pooled.fit_windowed(hp.score_window, row_scores, collective)
    if hp.score_window > 1 and not windowed.active:
        logger.warning("The calibration rows' scores are all alike: rows are scored alone, without the "
                       "score window of %d rows.", hp.score_window)
    scores = pooled.all_scores(np.concatenate([windowed(part) for part in row_scores]) if row_scores
                               else np.empty(0), collective)
    threshold = alarm_threshold(scores, hp.alarm_fraction)
    logger.info("Alarm threshold: score %.6g, the %g quantile of the %d calibration rows' scores "
                "(alarm-fraction; score window %d rows); the alarm output flags rows scoring below it.",
                threshold, hp.alarm_fraction, int(np.isfinite(scores).sum()), hp.score_window)
    final = dict(zip(("train:mse", "train:mae"), pooled.mse_mae(complete_rows(fitting_found, network.config),
                                                                collective), strict=True))
    final["calibration:mse"] = pooled.mse_mae(calibration_errors, collective)[0]
    if validation_parts:
        final.update(zip(("valid:mse", "valid:mae"), pooled_mse_mae(
            network, validation_parts, collective.validation, hp, chunk_length, collective), strict=True))
    final["alarm:threshold"] = threshold
    summary = TrainingSummary(epochs_run=state.epoch, best_epoch=state.best_epoch,
                              stopped_early=not interrupted and state.epoch < hp.epochs, interrupted=interrupted,
                              calibration_rows=calibration_rows, metrics=final,
                              missing_values=missing_values, skipped_subsequences=skipped_subsequences,
                              skipped_calibration_rows=skipped_calibration)
    predictor = Predictor(network.cpu(), hp, scaler, gaussian, chunk_length, summary.to_json(), threshold, windowed,
                          centres)
    return TrainingResult(predictor, summary)
