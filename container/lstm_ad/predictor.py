"""The trained detector: artifact save/load and scoring of a series.

An artifact is a folder with two to four files, none of which can execute code on loading:
  model.json    format version, hyperparameters, column count, scaler, chunk length, the error model's
                entries (Gaussian, alarm threshold, score window's scales, discord term's window and scale)
                and a short training summary
  weights.npz   the network's state_dict as plain arrays (see tensor_files.py)
  centres.npz   the error model's centres (scoring/centres.py), when it has any (`error-centres` > 0)
  discord.npz   the discord term's reference shapes (scoring/discord.py), when it has the term
Loading rebuilds the network from the hyperparameters and column count, then loads the
weights, refusing any missing, extra or misshapen tensor. An artifact written before the
alarm threshold existed loads without one (`alarm_threshold` None): it scores as before,
and asking it for alarms is a UserError that says to retrain. One written before the score
window existed (no `score_window`) scores every row alone, as it did. Format 2 (before the
centres) loads with the one Gaussian it was calibrated with; format 3 adds `centres`; format 4 the
discord term and the score window's position (without them: no discord term, a centred window).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import Scaler, clipped
from .errors import ArtifactError, UserError
from .forecast import ForecastErrors, forecast_errors
from .hyperparameters import Hyperparameters
from .model import LSTMForecaster, network_config
from .scoring.error_model import CENTRES_FILE, DISCORD_FILE, ErrorModel, rows_needed, split_margins
from .tensor_files import load_tensors, save_tensors

logger = logging.getLogger(__name__)

FORMAT_VERSION = 4  # 1: weights.pt (torch.save), no longer read: retrain; 2: no centres; 3: no discord term
READABLE_VERSIONS = (2, 3, 4)
META_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"
ARTIFACT_FILES = (META_FILE, WEIGHTS_FILE, CENTRES_FILE, DISCORD_FILE)


@dataclass(frozen=True)
class ScoreResult:
    """Per input row: the score (lower = more anomalous; scoring/error_model.py: with the defaults the lowest of
    the row's log-likelihood under N(μ, Σ), its score window's mean and its discord term, each put on the scale
    of the row's log-likelihood) and the one-step prediction in original units. Warm-up rows (the first
    context-length) are NaN.

    Optional, when asked for: `alarm` 1.0 where the score is below the stored threshold, else 0.0;
    `attribution` each column's share (>= 0) of the squared Mahalanobis distance D^2 of the row's error
    vector from the mean error (scoring/attribution.py), which sum over the columns to D^2 =
    2 (best - log N(e; μ, Σ)) under the one Gaussian N(μ, Σ), whatever the score is."""

    score: np.ndarray  # (rows,); the CSV answer's first column; the JSON answer's `log_likelihood` (the listing's name)
    predictions: np.ndarray  # (rows, columns)
    alarm: np.ndarray | None = None  # (rows,)
    attribution: np.ndarray | None = None  # (rows, columns)


@dataclass
class Predictor:
    network: LSTMForecaster
    hyperparameters: Hyperparameters
    scaler: Scaler
    error_model: ErrorModel
    chunk_length: int
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> int:
        return self.network.config.columns

    @property
    def context_length(self) -> int:
        return self.hyperparameters.context_length

    def rows_needed(self) -> tuple[int, int]:
        """(before, after): the rows a request must hold before and after a row for the row to be scored as in
        one long request (error_model.rows_needed; a live stream's overlap is `before` rows). With the request's
        `first_row` given (a live stream's requests) its scores are then those of one long request (the
        network's numbers bit for bit, on CPU); without it, up to the network's sensitivity to where it starts
        reading (docs/serving-and-batch.md). Split files, which cannot say where they start: split_margins."""
        return rows_needed(self.context_length, self.chunk_length, *self.error_model.windows())

    def split_margins(self) -> tuple[int, int]:
        """(head, tail) of split files (error_model.split_margins): each starts on a multiple of chunk_length
        rows, and they overlap by head + tail rows."""
        return split_margins(self.chunk_length, *self.error_model.windows())

    def rows_needed_text(self) -> str:
        """rows_needed() for a client: what a live stream and split files must send (the logs of train, serve)."""
        before, after = self.rows_needed()
        provisional = (f" and gets provisional scores for its last {after} rows (score-window-position "
                       f"{self.hyperparameters.score_window_position}; `trailing` makes every score final)")
        return (f"A row is scored as in one long request when its request holds the {before} rows before it"
                f"{f' and the {after} after it' if after else ''}: a live stream sends each new row with the "
                f"{before} rows before it and CustomAttributes first-row=<the number of the request's first row "
                f"in the stream>{provisional if after else ''} (model.json: rows_needed); split files start on "
                f"multiples of {self.chunk_length} rows and overlap by {sum(self.split_margins())} rows "
                "(lstm-ad-local split).")

    def forecast_errors(self, values: np.ndarray) -> ForecastErrors:
        """Standardised error vectors and one-step predictions of a raw series."""
        self.network.eval()
        return forecast_errors(self.network, self.standardise(values), self.context_length, self.chunk_length)

    def standardise(self, values: np.ndarray) -> np.ndarray:
        """Scaled as in training, then clipped (data.clipped): a value far beyond anything seen in training
        (1e308, say) stays a finite, extreme input, so its row scores as a clear anomaly."""
        return clipped(self.scaler.transform(values))

    def score(self, values: np.ndarray, alarm: bool = False, attribution: bool = False, first_row: int = 0
              ) -> ScoreResult:
        """Score a raw series (rows, columns) as one request; `alarm` and `attribution` add those outputs;
        `first_row`: the number of its first row in the stream it is part of (0: the request is the series).

        A request of at most context-length rows is all warm-up: every row gets NaN (empty fields),
        so that batch transform's mini-batches always get one output row per input row.
        """
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.columns:
            raise UserError(f"expected {self.columns} columns (as in training), got "
                            f"{values.shape[1] if values.ndim == 2 else values.shape}")
        if alarm and self.error_model.alarm_threshold is None:
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
            standardised = self.standardise(values)
            self.network.eval()
            result = forecast_errors(self.network, standardised, self.context_length, self.chunk_length,
                                     first_row=first_row)
            scored = result.first_scored_row
            score[scored:] = self.error_model.score(result.errors[scored:], standardised)
            if shares is not None:
                shares[scored:] = self.error_model.attribution(result.errors[scored:], self.columns)
            predictions[scored:] = self.scaler.inverse(result.one_step[scored:].astype(np.float64))
        flags = self.error_model.alarms(score) if alarm else None
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
            **self.error_model.to_json(),  # gaussian, alarm_threshold, score_window, centres, discord
            # For clients (a live stream's overlap, split files'); derived, never read back: rows_needed()
            "rows_needed": dict(zip(("before", "after"), self.rows_needed(), strict=True)),
            "summary": self.summary,
        }
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
        try:
            save_tensors(staging / WEIGHTS_FILE, self.network.state_dict())
            names = [WEIGHTS_FILE, *self.error_model.save_arrays(staging)]
            (staging / META_FILE).write_text(json.dumps(meta, indent=1))
            for name in (*names, META_FILE):  # model.json last: it marks a complete artifact
                os.replace(staging / name, folder / name)
            for former in {CENTRES_FILE, DISCORD_FILE} - set(names):  # a former artifact's: model.json no
                (folder / former).unlink(missing_ok=True)  # longer names them
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
                error_model=ErrorModel.from_json(meta, folder, network.config.error_dimension),
                chunk_length=int(meta["chunk_length"]),
                summary=meta.get("summary", {}),
            )
        except ArtifactError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, UserError) as exc:
            # UnreadableTensorFile is a ValueError; a size mismatch in load_state_dict a RuntimeError
            raise ArtifactError(f"The model in {folder} is damaged or incompatible: {exc}") from exc
        network.to(device or torch.device("cpu")).eval()
        return predictor
