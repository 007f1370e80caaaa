"""The trained detector: artifact save/load and scoring of a series.

An artifact is a folder with two or three files, none of which can execute code on loading:
  model.json    format version, hyperparameters, column count, scaler, Gaussian,
                score window's scales, chunk length, alarm threshold and a short training summary
  weights.npz   the network's state_dict as plain arrays (see tensor_files.py)
  centres.npz   the error model's centres (nearest.py), when it has any (`error-centres` > 0)
Loading rebuilds the network from the hyperparameters and column count, then loads the
weights, refusing any missing, extra or misshapen tensor. An artifact written before the
alarm threshold existed loads without one (`alarm_threshold` None): it scores as before,
and asking it for alarms is a UserError that says to retrain. One written before the score
window existed (no `score_window`) scores every row alone, as it did. Format 2 (before the
centres) loads with the one Gaussian it was calibrated with; format 3 adds `centres`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import Scaler
from .errors import ArtifactError, UserError
from .forecast import ForecastErrors, forecast_errors
from .gaussian import Gaussian
from .hyperparameters import Hyperparameters
from .model import LSTMForecaster, NetworkConfig
from .nearest import NearestGaussian
from .tensor_files import load_tensors, save_tensors
from .threshold import alarms
from .windowed import WindowedScore

logger = logging.getLogger(__name__)

FORMAT_VERSION = 3  # 1: weights.pt (torch.save), no longer read: retrain; 2: no centres
READABLE_VERSIONS = (2, 3)
META_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"
CENTRES_FILE = "centres.npz"
ARTIFACT_FILES = (META_FILE, WEIGHTS_FILE, CENTRES_FILE)
MAX_STANDARDISED = 1e4  # training standard deviations from the training mean; inputs beyond are clipped


@dataclass(frozen=True)
class ScoreResult:
    """Per input row: the score (lower = more anomalous; the error model's log-likelihood of the row
    (nearest.py), or of the window around it (windowed.py)) and the one-step prediction in original
    units. Warm-up rows (the first context-length) are NaN.

    Optional, when asked for: `alarm` 1.0 where the score is below the stored threshold, else 0.0;
    `attribution` each column's share (>= 0) of the squared Mahalanobis distance D^2 of the row's error
    vector from the mean error (column_shares), which sum over the columns to D^2 = 2 (best - log N(e; μ, Σ)),
    the row's log-likelihood under the one Gaussian of the paper."""

    score: np.ndarray  # (rows,); the JSON answer's `log_likelihood`, the CSV answer's first column
    predictions: np.ndarray  # (rows, columns)
    alarm: np.ndarray | None = None  # (rows,)
    attribution: np.ndarray | None = None  # (rows, columns)


@dataclass
class Predictor:
    network: LSTMForecaster
    hyperparameters: Hyperparameters
    scaler: Scaler
    gaussian: Gaussian
    chunk_length: int
    summary: dict[str, Any] = field(default_factory=dict)
    alarm_threshold: float | None = None  # None: an artifact from before thresholds were stored
    windowed: WindowedScore | None = None  # None: an artifact from before the score window; rows scored alone
    centres: np.ndarray | None = None  # (n, l*d) float32; None: the one Gaussian at the mean (nearest.py)

    @cached_property
    def error_model(self) -> NearestGaussian:
        return NearestGaussian(self.gaussian, self.centres)

    @property
    def columns(self) -> int:
        return self.network.config.columns

    @property
    def context_length(self) -> int:
        return self.hyperparameters.context_length

    def forecast_errors(self, values: np.ndarray) -> ForecastErrors:
        """Standardised error vectors and one-step predictions of a raw series."""
        self.network.eval()
        return forecast_errors(self.network, self.standardise(values), self.context_length, self.chunk_length)

    def standardise(self, values: np.ndarray) -> np.ndarray:
        """Scaled as in training, then clipped to +-MAX_STANDARDISED: a value far beyond anything seen
        in training (1e308, say) stays a finite, extreme input, so its row scores as a clear anomaly
        instead of overflowing the network's float32 arithmetic into an empty score."""
        return np.clip(self.scaler.transform(values), -MAX_STANDARDISED, MAX_STANDARDISED)

    def score(self, values: np.ndarray, alarm: bool = False, attribution: bool = False) -> ScoreResult:
        """Score a raw series (rows, columns) as one request; `alarm` and `attribution` add those outputs.

        A request of at most context-length rows is all warm-up: every row gets NaN (empty fields),
        so that batch transform's mini-batches always get one output row per input row.
        """
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.columns:
            raise UserError(f"expected {self.columns} columns (as in training), got "
                            f"{values.shape[1] if values.ndim == 2 else values.shape}")
        if alarm and self.alarm_threshold is None:
            raise UserError("This model has no stored alarm threshold (it was trained by an earlier version of "
                            "LSTM-AD): retrain it to get the alarm output, or leave `alarm` out of the outputs.")
        score = np.full(values.shape[0], np.nan)
        predictions = np.full(values.shape, np.nan)
        shares = np.full(values.shape, np.nan) if attribution else None
        if values.shape[0] <= self.context_length:
            logger.info("A request of %d rows is all warm-up (context-length %d): answering empty fields for "
                        "every row. Send at least %d rows to get scores.", values.shape[0], self.context_length,
                        self.context_length + 1)
        else:
            result = self.forecast_errors(values)
            scored = result.first_scored_row
            score[scored:] = self.error_model.log_likelihood(result.errors[scored:])
            if shares is not None:
                # The terms of the one Gaussian's D^2 (distance from the mean error), not of the nearest centre's:
                # on smd-dev they named the culprit columns more often (docs/benchmarks.md, "Attribution").
                shares[scored:] = column_shares(self.gaussian.contributions(result.errors[scored:]), self.columns)
            if self.windowed is not None:
                score[scored:] = self.windowed(score[scored:])
            predictions[scored:] = self.scaler.inverse(result.one_step[scored:].astype(np.float64))
        flags = alarms(score, self.alarm_threshold) if alarm and self.alarm_threshold is not None else None
        return ScoreResult(score, predictions, flags, shares)

    # -- artifact ---------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """Write the artifact into `folder`; files appear only when complete."""
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": FORMAT_VERSION,
            "hyperparameters": self.hyperparameters.to_json(),
            "columns": self.columns,
            "chunk_length": self.chunk_length,
            "scaler": self.scaler.to_json(),
            "gaussian": self.gaussian.to_json(),
            "alarm_threshold": self.alarm_threshold,
            "score_window": None if self.windowed is None else self.windowed.to_json(),
            "centres": None if self.centres is None else {"file": CENTRES_FILE, "count": len(self.centres)},
            "summary": self.summary,
        }
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
        try:
            save_tensors(staging / WEIGHTS_FILE, self.network.state_dict())
            names = [WEIGHTS_FILE]
            if self.centres is not None:
                save_tensors(staging / CENTRES_FILE, {"centres": torch.from_numpy(self.centres.astype(np.float32))})
                names.append(CENTRES_FILE)
            (staging / META_FILE).write_text(json.dumps(meta, indent=1))
            for name in (*names, META_FILE):  # model.json last: it marks a complete artifact
                os.replace(staging / name, folder / name)
            if self.centres is None:  # a former artifact's centres: model.json no longer names them
                (folder / CENTRES_FILE).unlink(missing_ok=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path, device: torch.device | None = None) -> Predictor:
        meta_path, weights_path = folder / META_FILE, folder / WEIGHTS_FILE
        if not meta_path.is_file() or not weights_path.is_file():
            raise ArtifactError(
                f"No LSTM-AD model in {folder}: expected {META_FILE} and {WEIGHTS_FILE}, found "
                f"{sorted(p.name for p in folder.iterdir()) if folder.is_dir() else 'no such folder'}. "
                "Use a model.tar.gz produced by this algorithm's training job."
            )
        try:
            meta = json.loads(meta_path.read_text())
            version = meta.get("format_version")
            if version not in READABLE_VERSIONS:
                raise ArtifactError(f"{meta_path}: format version {version!r}; this image reads versions "
                                    f"{', '.join(map(str, READABLE_VERSIONS))}. Retrain with this image.")
            hyperparameters = Hyperparameters.from_json(meta["hyperparameters"])
            network = LSTMForecaster(network_config(hyperparameters, int(meta["columns"])))
            state, _ = load_tensors(weights_path)
            network.load_state_dict(state)  # strict: every tensor present, of the right shape
            predictor = cls(
                network=network,
                hyperparameters=hyperparameters,
                scaler=Scaler.from_json(meta["scaler"]),
                gaussian=Gaussian.from_json(meta["gaussian"]),
                chunk_length=int(meta["chunk_length"]),
                summary=meta.get("summary", {}),
                alarm_threshold=_optional_float(meta.get("alarm_threshold")),
                windowed=None if meta.get("score_window") is None else WindowedScore.from_json(meta["score_window"]),
                centres=_load_centres(folder, meta.get("centres"), network.config),
            )
        except ArtifactError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, UserError) as exc:
            # UnreadableTensorFile is a ValueError; a size mismatch in load_state_dict a RuntimeError
            raise ArtifactError(f"The model in {folder} is damaged or incompatible: {exc}") from exc
        network.to(device or torch.device("cpu")).eval()
        return predictor


def _load_centres(folder: Path, entry: dict[str, Any] | None, config: NetworkConfig) -> np.ndarray | None:
    """The centres that model.json announces (`{"file", "count"}`), checked against it; None when none."""
    if entry is None:
        return None
    if entry.get("file") != CENTRES_FILE:  # never a path taken from the file itself
        raise ArtifactError(f"{folder / META_FILE}: centres in {entry.get('file')!r}, expected {CENTRES_FILE}: the "
                            "model is damaged; use the artifact training wrote, or retrain.")
    tensors, _ = load_tensors(folder / CENTRES_FILE)
    centres = tensors["centres"].numpy().astype(np.float32)
    expected = (int(entry["count"]), config.prediction_length * config.columns)
    if centres.shape != expected or not np.isfinite(centres).all():
        raise ArtifactError(f"{folder / CENTRES_FILE}: centres of shape {centres.shape} (expected {expected}, "
                            "all finite): the model is damaged; use the artifact training wrote, or retrain.")
    return centres


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def column_shares(contributions: np.ndarray, columns: int) -> np.ndarray:
    """(rows, l*d) terms of D^2 (Gaussian.contributions; horizon-major: entry h*d + j is column j at
    horizon h+1) -> (rows, d) each column's share of D^2: D^2 split in proportion to the absolute size of
    each column's terms. Shares are >= 0 and sum to D^2 = 2 (best - score) on every row.

    A row with gaps: the terms are those of the marginal over its observed entries (Gaussian.contributions),
    the missing columns get NaN, and the shares sum to the marginal's D^2.

    Why absolute sizes: a term is negative when an entry's error goes against what the correlations
    predict from the others, which is as much a part of the anomaly as a large positive term; signed sums
    let such terms cancel, and ranked the dataset's culprit columns worse (scripts/bench_answers.py).
    """
    rows = contributions.shape[0]
    terms = contributions.reshape(rows, -1, columns)
    missing = np.isnan(terms).all(axis=1)  # (rows, d): a missing value has no error at any horizon
    size = np.nansum(np.abs(terms), axis=1)  # (rows, d)
    total = size.sum(axis=1, keepdims=True)
    distance = np.nansum(terms, axis=(1, 2))[:, None]  # D^2 of the observed entries
    with np.errstate(invalid="ignore", divide="ignore"):
        shares: np.ndarray = np.where(total > 0, size / total, 0.0) * distance
    shares[missing] = np.nan  # a missing column (or a row with nothing observed) gets no share
    return shares


def network_config(hp: Hyperparameters, columns: int) -> NetworkConfig:
    """The network that `hp` describes for series of `columns` columns."""
    return NetworkConfig(columns, hp.prediction_length, hp.hidden_size, hp.num_layers, hp.dropout)
