"""Fitting LSTM-AD: split, scale, fit the LSTM, fit the error model.

Each training series is split in time: the first (1 - calibration-fraction) rows fit
the LSTM, the rest calibrate the error model (scoring/) and decide early stopping.
The LSTM is fitted on subsequences of context-length + prediction-length rows that
start every sequence-stride rows of a fitting part (never crossing a file boundary):
it reads the first context-length rows from a zero state, and the loss is the MSE of
every l-step prediction made after a short burn-in against the true future rows.

Missing values (NaN, from empty cells): subsequences that contain one (in their inputs or
their targets) are skipped, the scaler ignores them, the calibration and validation parts
are scored as requests are (gaps read as the network's own prediction, forecast.py), and the
Gaussian is fitted to the complete error vectors only. The log says how much was left out.

`train` reads top to bottom: check, split and scale (split.py), count gaps, resume, the epochs
(`_run_epochs`, `_run_epoch`, over the subsequences of subsequences.py), then `_finish` (the error model
and the final metrics; after a stop, on the rows that fit in a time budget: stop_sample.py). A job of
several ranks runs the same function on every rank (parallel/).
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

from .adam import Adam
from .checkpoint import Checkpointer, TrainingState
from .data import Series
from .errors import DataError, TrainingStopped, UserError
from .forecast import complete_rows, default_chunk_length, forecast_errors
from .hyperparameters import Hyperparameters
from .model import LSTMForecaster, network_config
from .parallel import pooled
from .parallel.collectives import Collective, Share
from .parallel.ranks import GlobalBatches
from .parallel.threads import replica_count, single_threaded_kernels
from .predictor import Predictor
from .scoring.error_model import ErrorModel
from .split import Parts, check_series, split_and_scale
from .stop_sample import Roles, bounded
from .subsequences import SubsequenceSampler, subsequence_loss

logger = logging.getLogger(__name__)

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
    stop_sample: dict[str, float] | None = None  # after a stop: the rows the error model used (stop_sample.py)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingResult:
    predictor: Predictor
    summary: TrainingSummary


@dataclass(frozen=True)
class GapCounts:
    """Missing values in the training series of every rank, and what they cost."""

    missing_values: int  # empty cells
    subsequences: int  # training subsequences without a gap: the ones trained on
    skipped: int  # training subsequences with one


@dataclass(frozen=True)
class TrainingRun:
    """What every step of one call of `train` works with."""

    hp: Hyperparameters
    network: LSTMForecaster
    optimizer: Adam
    sampler: SubsequenceSampler
    parts: Parts
    collective: Collective
    chunk_length: int

    def pooled_mse_mae(self, parts: list[np.ndarray], share: Share) -> tuple[float, float]:
        """MSE and MAE of the parts' error vectors over every rank (each scores the parts of `share` it owns)."""
        return pooled.mse_mae(streaming_errors(self.network, share.mine(parts), self.hp, self.chunk_length),
                              self.collective)


def select_device() -> torch.device:
    """The GPU when there is one, else the CPU (several GPUs: one rank each, sagemaker/ranks.py)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def streaming_errors(network: LSTMForecaster, parts: list[np.ndarray], hp: Hyperparameters,
                     chunk_length: int) -> np.ndarray:
    """Complete error vectors of every scorable row of every part, scored as at inference (rows whose
    error vector misses an entry, because the row has a gap, are left out)."""
    return complete_rows(part_errors(network, parts, hp, chunk_length), network.config.error_dimension)


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
    several ranks (`collective`, parallel/collectives.py) `series` are this rank's files, every rank returns
    the same predictor, and only rank 0 writes checkpoints.
    """
    collective = collective or Collective()
    check_series(series, validation, hp)
    device = device or select_device()
    torch.manual_seed(hp.seed)
    parts = split_and_scale(series, validation, hp, collective)
    network = LSTMForecaster(network_config(hp, parts.columns)).to(device)
    sampler = SubsequenceSampler(parts.fitting, hp, device)
    gaps = count_gaps(series, sampler, hp, collective)
    replicas = replica_count(device, hp.batch_size, hp.dropout) if collective.size == 1 else 1
    logger.info("Training on %s: %d series, %d columns, %d fitting rows, %d calibration rows, "
                "%d subsequences per epoch, %d parameters, mini-batches in %d thread replica(s) on each of %d "
                "rank(s)", device, len(series), parts.columns, sum(map(len, parts.fitting)), parts.calibration_rows,
                gaps.subsequences, sum(p.numel() for p in network.parameters()), replicas, collective.size)
    optimizer = Adam(network.parameters(), lr=hp.lr)
    checkpointer = Checkpointer(checkpoint_dir, hp, parts.columns) if checkpoint_dir else None
    state = (checkpointer.load(network, optimizer) if checkpointer else None) or TrainingState.fresh(hp.seed)
    check_same_start(state.epoch, collective)
    if not collective.rank.is_master:
        checkpointer = None  # rank 0 alone writes checkpoints; every rank resumes from its copy

    run = TrainingRun(hp, network, optimizer, sampler, parts, collective, default_chunk_length(hp.context_length))
    interrupted = _run_epochs(run, state, checkpointer, replicas, stop_requested, on_epoch)
    if state.best_state is None:
        raise TrainingStopped("Training was stopped before the first epoch completed.")
    network.load_state_dict(state.best_state)
    network.eval()
    started = time.monotonic()
    result = _finish(run, state, interrupted, gaps)
    logger.info("Calibration and final metrics done in %.2fs", time.monotonic() - started)
    return result


def count_gaps(series: list[Series], sampler: SubsequenceSampler, hp: Hyperparameters,
               collective: Collective) -> GapCounts:
    """Count the missing values and the subsequences they cost, over every rank; say so in the log, and
    refuse data where every subsequence has a gap."""
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
    return GapCounts(missing_values, subsequences, skipped)


def check_same_start(epoch: int, collective: Collective) -> None:
    """Every rank must resume from the same epoch (each host reads its own copy of the checkpoints)."""
    epochs = collective.gather_ints(epoch)
    if len(set(epochs)) > 1:
        raise DataError(f"The ranks of this job resume from different epochs ({epochs}, in rank order): every "
                        "host must see the same checkpoint. Resume with the same host count and checkpoint "
                        "location, or remove the checkpoints to start afresh.")


def _run_epochs(run: TrainingRun, state: TrainingState, checkpointer: Checkpointer | None, replicas: int,
                stop_requested: Callable[[], bool], on_epoch: Callable[[EpochReport], None]) -> bool:
    """Epochs until `epochs` are done or the patience runs out; True when a stop was requested (SIGTERM)."""
    hp, network, collective = run.hp, run.network, run.collective
    window_shape = (hp.context_length + hp.prediction_length, run.parts.columns)
    with single_threaded_kernels(replicas > 1), \
            GlobalBatches(network, collective, len(run.sampler), window_shape, replicas) as batches:
        while state.epoch < hp.epochs and not state.patience_exhausted(hp.early_stopping_patience):
            started = time.monotonic()
            epoch_loss = _run_epoch(run, batches, state, stop_requested)
            if epoch_loss is None:
                return True
            state.epoch += 1
            calibration_mse, _ = run.pooled_mse_mae(run.parts.calibration, collective.training)
            state.record(calibration_mse, network)
            best = " (best)" if state.best_epoch == state.epoch else ""
            logger.info("epoch %d/%d done in %.1fs%s", state.epoch, hp.epochs, time.monotonic() - started, best)
            valid_mse = valid_mae = None
            if run.parts.validation:
                valid_mse, valid_mae = run.pooled_mse_mae(run.parts.validation, collective.validation)
            on_epoch(EpochReport(state.epoch, *epoch_loss, calibration_mse, valid_mse, valid_mae))
            if checkpointer:
                checkpointer.save(network, run.optimizer, state)
            if batches.stop(stop_requested):
                return True
    return False


def _run_epoch(run: TrainingRun, batches: GlobalBatches, state: TrainingState,
               stop_requested: Callable[[], bool]) -> tuple[float, float] | None:
    """One pass over the shuffled subsequences (of every rank): the epoch's mean squared and mean absolute
    error; None when a stop was requested mid-epoch."""
    hp = run.hp
    run.network.train()
    order = torch.randperm(batches.total, generator=state.generator).to(run.sampler.starts.device)
    squared_sum = absolute_sum = 0.0  # over the windows, of each window's mean squared (absolute) error
    for first in range(0, len(order), hp.batch_size):
        if batches.stop(stop_requested):
            return None
        batch = order[first:first + hp.batch_size]
        windows = run.sampler.batch(batches.mine(batch))
        squared, absolute = batches.gradient(lambda net, w: subsequence_loss(net, w, hp), windows,
                                             len(batch))  # sets .grad
        torch.nn.utils.clip_grad_norm_(run.network.parameters(), max_norm=5.0, foreach=True)
        run.optimizer.step()
        squared_sum += squared
        absolute_sum += absolute
    squared_sum, absolute_sum = batches.epoch_sums(squared_sum, absolute_sum)
    if not math.isfinite(squared_sum):
        raise UserError(f"Training diverged: the loss became {squared_sum} in epoch {state.epoch + 1}. "
                        f"Lower `lr` (now {hp.lr:g}).")
    return squared_sum / len(order), absolute_sum / len(order)


def _finish(run: TrainingRun, state: TrainingState, interrupted: bool, gaps: GapCounts) -> TrainingResult:
    """Fit the error model (Gaussian, centres, score window, alarm threshold) with the best weights, compute the
    final metrics; after a stop, on rows that fit in a time budget (stop_sample.py)."""
    hp, network, collective = run.hp, run.network, run.collective
    dimension = network.config.error_dimension
    # This rank's files (sums over all ranks); gap rows too, in time order.
    mine = Roles(collective.training.mine(run.parts.fitting), collective.training.mine(run.parts.calibration),
                 collective.validation.mine(run.parts.validation))
    stop_sample = None
    if interrupted:  # SageMaker kills the container 120 s after SIGTERM: the model must be written before

        def errors_of(parts: list[np.ndarray]) -> list[np.ndarray]:
            return part_errors(network, parts, hp, run.chunk_length)

        mine, stop_sample = bounded(mine, hp, dimension, errors_of, collective)
    calibration_values, fitting_values = mine.calibration, mine.fitting
    calibration = part_errors(network, calibration_values, hp, run.chunk_length)
    fitting = part_errors(network, fitting_values, hp, run.chunk_length)
    calibration_rows, skipped_calibration = check_calibration(calibration, dimension, collective)
    error_model = ErrorModel.fit(calibration, fitting, hp, dimension, collective,
                                 values=(calibration_values, fitting_values))
    final = dict(zip(("train:mse", "train:mae"), pooled.mse_mae(complete_rows(fitting, dimension), collective),
                     strict=True))
    final["calibration:mse"] = pooled.mse_mae(complete_rows(calibration, dimension), collective)[0]
    if run.parts.validation:
        final.update(zip(("valid:mse", "valid:mae"),
                         pooled.mse_mae(streaming_errors(network, mine.validation, hp, run.chunk_length), collective),
                         strict=True))
    final["alarm:threshold"] = error_model.alarm_threshold  # type: ignore[assignment]  # fit always sets it
    summary = TrainingSummary(epochs_run=state.epoch, best_epoch=state.best_epoch,
                              stopped_early=not interrupted and state.epoch < hp.epochs, interrupted=interrupted,
                              calibration_rows=calibration_rows, metrics=final,
                              missing_values=gaps.missing_values, skipped_subsequences=gaps.skipped,
                              skipped_calibration_rows=skipped_calibration,
                              stop_sample=None if stop_sample is None else stop_sample.to_json())
    predictor = Predictor(network.cpu(), hp, run.parts.scaler, error_model, run.chunk_length, summary.to_json())
    return TrainingResult(predictor, summary)


def check_calibration(found: list[np.ndarray], dimension: int, collective: Collective) -> tuple[int, int]:
    """(complete calibration error vectors, calibration rows left out for a gap), over every rank; a DataError
    when there are fewer than 2, a warning when there are few for the error model's dimension."""
    rows = pooled.count(len(complete_rows(found, dimension)), collective)
    total = pooled.count(sum(len(errors) for errors in found), collective)
    skipped = total - rows
    if skipped:
        logger.info("Calibration: %d of %d calibration rows (%.1f %%) have a gap in their error vector and are "
                    "left out of the Gaussian's fit.", skipped, total, 100 * skipped / max(total, 1))
    if rows < 2:
        raise DataError(f"Only {rows} calibration rows: raise `calibration-fraction` or provide longer series.")
    if rows < 10 * dimension:
        logger.warning("Only %d calibration rows for a %d-dimensional error model (about %d recommended): "
                       "scores may be unreliable. Provide more data or raise `calibration-fraction`.",
                       rows, dimension, 10 * dimension)
    return rows, skipped
