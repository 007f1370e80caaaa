"""The error model: how a row's error vector (and the series around it) becomes its score. Fitted once by
training, saved with the artifact, used unchanged by the predictor.

`ErrorModel` holds five parts, each computed by its own module:

  gaussian     N(μ, Σ) of the calibration rows' error vectors (gaussian.py): the paper's model
  centres      optional (`error-centres` > 0): error vectors of training rows; a row's log-likelihood is that of
               the Gaussian of covariance Σ at its nearest centre (centres.py); without centres, that of N(μ, Σ)
  window       the score window (window.py): the row's log-likelihood or its window's mean, on the
               calibration rows' scale, the window centred on the row or trailing it
  discord      the discord term (discord.py): how far the shape of the subsequence around the row lies from
               the fitting rows' shapes, on the calibration rows' scale
  threshold    the alarm threshold (threshold.py), from the calibration rows' scores and alarm-fraction

and attribution.py splits a row's distance from μ over the columns. With z = (value - centre) / spread of each
term against its own values on the calibration rows (window.py's Scale), the score of a row is

    score = row.centre + row.spread * min(z_row, z_window, z_discord)

in the units of the row's log-likelihood, and equal to it wherever the row's own term is the lowest. With
`score-window` 1 and `discord-refs` 0 (and `error-centres` 0, the default), the paper's log N(e; μ, Σ).

Fit: `ErrorModel.fit(calibration, fitting, hp, dimension, collective, values)` (public: validates, then `_fit`
computes). The calibration rows are scored exactly as a request's rows are (`_combined`), each without its own
error vector among the centres, as a new row would be. In a job of several ranks every rank passes its own
parts and gets the same model (parallel/pooled.py). Artifact: `to_json()` gives model.json's entries,
`save_arrays` writes centres.npz and discord.npz; `from_json` reads them back (older artifacts lack the newer
parts: those are None and the rows score as they did).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ArtifactError
from ..forecast import complete_rows
from ..hyperparameters import Hyperparameters
from ..parallel import pooled
from ..parallel.collectives import Collective
from ..tensor_files import load_tensors, save_tensors
from .attribution import column_shares
from .centres import NearestCentres
from .discord import SEGMENTS, Discord, fit_discord_with_distances, subsequence_start
from .gaussian import Gaussian
from .threshold import alarm_threshold, alarms
from .window import CENTRED, POSITIONS, Scale, ScoreWindow, window_means
from .window import rows_around as window_rows_around

logger = logging.getLogger(__name__)

CENTRES_FILE = "centres.npz"
DISCORD_FILE = "discord.npz"


@dataclass(frozen=True)
class ErrorModel:
    gaussian: Gaussian  # N(μ, Σ) of the calibration rows' complete error vectors
    centres: np.ndarray | None = None  # (n, k) float32 error vectors of training rows; None: the one centre μ
    window: ScoreWindow | None = None  # None: an artifact from before the score window; rows scored alone
    alarm_threshold: float | None = None  # None: an artifact from before thresholds were stored
    discord: Discord | None = None  # None: no discord term (off, or an artifact from before it)

    def rows_around(self) -> tuple[int, int]:
        """(before, after): the rows of its request a row's score reads before and after it, beyond the rows
        of its own error vector (the score window's, the discord subsequence's; 0 and 0 for rows alone)."""
        return rows_read(*self.windows())

    def windows(self) -> tuple[int, str, int]:
        """(score window, its position, discord window): rows_read's arguments (1 and 0 when absent)."""
        window = self.window.window if self.window is not None else 1
        position = self.window.position if self.window is not None else CENTRED
        return window, position, self.discord.window if self.discord is not None else 0

    @property
    def dimension(self) -> int:
        """k = prediction-length x columns: the length of an error vector."""
        return self.gaussian.dim

    # -- fit ------------------------------------------------------------------------------------

    @classmethod
    def fit(cls, calibration: list[np.ndarray], fitting: list[np.ndarray], hp: Hyperparameters, dimension: int,
            collective: Collective | None = None, values: tuple[list[np.ndarray], list[np.ndarray]] | None = None
            ) -> ErrorModel:
        """Fit to this rank's error vectors (NaN where a value is missing), one array (rows, `dimension`) per
        part in time order: the calibration parts' (the Gaussian, the score window's scales, the threshold)
        and the fitting parts' (centres are drawn from both). Needs at least 2 complete calibration vectors
        over all ranks. `values`: this rank's (calibration, fitting) parts themselves, standardised, each
        ending with the rows of its error vectors (a part may start with warm-up rows): the discord term's
        references and scale; without them there is no discord term. `hp` gives error-centres, seed,
        score-window, score-window-position, discord-refs, discord-window and alarm-fraction."""
        for part in calibration + fitting:
            if part.ndim != 2 or part.shape[1] != dimension:
                raise ValueError(f"expected error vectors of shape (rows, {dimension}), got {part.shape}")
        if values is not None:
            for found, given in zip((calibration, fitting), values, strict=True):
                if len(given) != len(found) or any(len(v) < len(e) for v, e in zip(given, found, strict=True)):
                    raise ValueError("expected one values part per error part, each at least as long")
        return cls._fit(calibration, fitting, hp, dimension, collective or Collective(), values)

    @classmethod
    def _fit(cls, calibration: list[np.ndarray], fitting: list[np.ndarray], hp: Hyperparameters, dimension: int,
             collective: Collective, values: tuple[list[np.ndarray], list[np.ndarray]] | None) -> ErrorModel:
        mean, scatter, n = pooled.mean_and_scatter(complete_rows(calibration, dimension), collective)
        if n < 2:
            raise ValueError(f"need at least 2 complete calibration error vectors, got {n}")
        centres, own = pooled.sample_centres(fitting, calibration, hp.error_centres, hp.seed, collective)
        rows_alone = cls(Gaussian.from_scatter(mean, scatter, n), centres)
        # A calibration row is scored without its own vector among the centres: as a new row would be.
        row_scores = [rows_alone._row_scores(errors, None if own is None else own[index])
                      for index, errors in enumerate(calibration)]
        window = _fit_window(hp.score_window, hp.score_window_position, row_scores, collective)
        if hp.score_window > 1 and not window.active:
            logger.warning("The calibration rows' scores are all alike: rows are scored alone, without the "
                           "score window of %d rows.", hp.score_window)
        discord, distances = None, None
        if values is not None:
            first_scored = [len(v) - len(e) for v, e in zip(values[0], calibration, strict=True)]
            discord, distances = fit_discord_with_distances(values[1], values[0], first_scored, hp, collective)
        scored = dataclasses.replace(rows_alone, window=window, discord=discord)
        # The discord term's z from the distances its fit measured (searching them again doubled its cost).
        z_discord: list[np.ndarray | None] = [None] * len(row_scores)
        if discord is not None and distances is not None:
            z_discord = [discord.z_of(found) for found in distances]
        scores = collective.gather(np.concatenate(
            [scored._combined(part, None if values is None else values[0][index], z_discord[index])
             for index, part in enumerate(row_scores)]) if row_scores else np.empty(0))
        threshold = alarm_threshold(scores, hp.alarm_fraction)
        logger.info("Alarm threshold: score %.6g, for a false-alarm rate of %g on new normal rows (alarm-fraction: "
                    "the tail of the %d calibration rows' scores, extrapolated and moved down, scoring/threshold.py); "
                    "the alarm output flags rows scoring below it.",
                    threshold, hp.alarm_fraction, int(np.isfinite(scores).sum()))
        return dataclasses.replace(scored, alarm_threshold=threshold)

    # -- score ----------------------------------------------------------------------------------

    def score(self, errors: np.ndarray, values: np.ndarray | None = None, exclude: np.ndarray | None = None
              ) -> np.ndarray:
        """The scores of one request's rows from their error vectors (rows, k), in time order: lower is more
        anomalous; NaN for a row with no entry. `values`: the request itself (standardised, at least as many
        rows: the error vectors are those of its last rows), for the discord term; without it the term is left
        out. `exclude` (rows,): per row, the index of a centre it may not use (-1 for none), as training scores
        its calibration rows without their own vectors."""
        errors = self._checked(errors)
        if exclude is not None and np.shape(exclude) != (len(errors),):
            raise ValueError(f"expected one centre index per row ({len(errors)}), got shape {np.shape(exclude)}")
        if values is not None and (np.ndim(values) != 2 or len(values) < len(errors)):
            raise ValueError(f"expected the request's values (rows >= {len(errors)}, columns), got "
                             f"shape {np.shape(values)}")
        return self._combined(self._row_scores(errors, exclude), values)

    def alarms(self, scores: np.ndarray) -> np.ndarray:
        """1.0 where a score is below the stored threshold, else 0.0; NaN where the score is NaN."""
        if self.alarm_threshold is None:
            raise ValueError("this error model has no alarm threshold (an artifact from before thresholds)")
        return alarms(scores, self.alarm_threshold)

    def attribution(self, errors: np.ndarray, columns: int) -> np.ndarray:
        """(rows, columns): each column's share of the row's squared distance from μ under N(μ, Σ)
        (attribution.py); NaN for a missing column."""
        return column_shares(self.gaussian.contributions(self._checked(errors)), columns)

    def _checked(self, errors: np.ndarray) -> np.ndarray:
        errors = np.asarray(errors)
        if errors.ndim != 2 or errors.shape[1] != self.dimension:
            raise ValueError(f"expected error vectors of shape (rows, {self.dimension}), got {errors.shape}")
        return errors

    def _combined(self, row_scores: np.ndarray, values: np.ndarray | None,
                  z_discord: np.ndarray | None = None) -> np.ndarray:
        """The rows' scores from their own log-likelihoods: the score window's (the lower of the row's and its
        window's z), then the discord term's z where it is lower still, on the row's scale. `z_discord`: the
        rows' discord z when already known (the fit's), else computed from `values`."""
        scores = row_scores if self.window is None else self.window(row_scores)
        if self.discord is None or values is None or self.window is None or not self.window.row.spread > 0:
            return scores
        row = self.window.row
        if z_discord is None:
            z_discord = self.discord.z(values)[len(values) - len(scores):]
        with np.errstate(invalid="ignore"):
            lower = z_discord < (scores - row.centre) / row.spread  # False where either is NaN
        return np.where(lower, row.centre + row.spread * z_discord, scores)

    def _row_scores(self, errors: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """Each row's own log-likelihood: at its nearest centre (`exclude`: per row, a centre it may not use,
        -1 for none), or under N(μ, Σ) without centres."""
        if self._nearest is None:
            return self.gaussian.log_likelihood(errors)
        return self._nearest.log_likelihood(errors, exclude)

    @cached_property
    def _nearest(self) -> NearestCentres | None:
        if self.centres is None or not len(self.centres):
            return None
        return NearestCentres(self.gaussian, self.centres)

    # -- artifact -------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """model.json's entries of the error model (the centres themselves go to CENTRES_FILE: save_centres)."""
        return {
            "gaussian": self.gaussian.to_json(),
            "alarm_threshold": self.alarm_threshold,
            "score_window": None if self.window is None else self.window.to_json(),
            "centres": None if self.centres is None else {"file": CENTRES_FILE, "count": len(self.centres)},
            "discord": None if self.discord is None else {"file": DISCORD_FILE, **self.discord.to_json()},
        }

    def save_arrays(self, folder: Path) -> list[str]:
        """Write CENTRES_FILE and DISCORD_FILE into `folder` for the parts that have them; the names written."""
        names = []
        if self.centres is not None:
            save_tensors(folder / CENTRES_FILE, {"centres": torch.from_numpy(self.centres.astype(np.float32))})
            names.append(CENTRES_FILE)
        if self.discord is not None:
            save_tensors(folder / DISCORD_FILE, {"refs": torch.from_numpy(self.discord.refs.astype(np.float64))})
            names.append(DISCORD_FILE)
        return names

    @classmethod
    def from_json(cls, meta: dict[str, Any], folder: Path, dimension: int) -> ErrorModel:
        """The error model of the artifact in `folder` whose model.json holds `meta`; error vectors of `dimension`
        entries. ArtifactError for centres that do not match what model.json announces."""
        threshold = meta.get("alarm_threshold")
        return cls(
            gaussian=Gaussian.from_json(meta["gaussian"]),
            centres=_load_centres(folder, meta.get("centres"), dimension),
            window=None if meta.get("score_window") is None else ScoreWindow.from_json(meta["score_window"]),
            alarm_threshold=None if threshold is None else float(threshold),
            discord=_load_discord(folder, meta.get("discord"), meta.get("columns")),
        )


def _fit_window(window: int, position: str, row_scores: list[np.ndarray], collective: Collective) -> ScoreWindow:
    """The score window's scales from every rank's calibration parts (`row_scores`: this rank's, one array of
    row log-likelihoods per part, in time order: windows never straddle two parts, as they never straddle two
    requests)."""
    found = [window_means(part, window, position) for part in row_scores]
    rows, means, counts = (np.concatenate(arrays) if found else np.empty(0)
                           for arrays in (row_scores, [m for m, _ in found], [n for _, n in found]))
    rows, means, counts = (collective.gather(a) for a in (rows, means, counts))
    return ScoreWindow.fit(window, rows, means, counts, position)


def _load_centres(folder: Path, entry: dict[str, Any] | None, dimension: int) -> np.ndarray | None:
    """The centres that model.json announces (`{"file", "count"}`), checked against it; None when none."""
    if entry is None:
        return None
    if entry.get("file") != CENTRES_FILE:  # never a path taken from the file itself
        raise ArtifactError(f"{folder}: model.json names the centres file {entry.get('file')!r}, expected "
                            f"{CENTRES_FILE}: the model is damaged; use the artifact training wrote, or retrain.")
    tensors, _ = load_tensors(folder / CENTRES_FILE)
    centres = tensors["centres"].numpy().astype(np.float32)
    expected = (int(entry["count"]), dimension)
    if centres.shape != expected or not np.isfinite(centres).all():
        raise ArtifactError(f"{folder / CENTRES_FILE}: centres of shape {centres.shape} (expected {expected}, "
                            "all finite): the model is damaged; use the artifact training wrote, or retrain.")
    return centres


def _load_discord(folder: Path, entry: dict[str, Any] | None, columns: Any) -> Discord | None:
    """The discord term that model.json announces, its references checked against it; None when none."""
    if entry is None:
        return None
    if entry.get("file") != DISCORD_FILE:  # never a path taken from the file itself
        raise ArtifactError(f"{folder}: model.json names the discord file {entry.get('file')!r}, expected "
                            f"{DISCORD_FILE}: the model is damaged; use the artifact training wrote, or retrain.")
    refs = load_tensors(folder / DISCORD_FILE)[0]["refs"].numpy().astype(np.float64)
    expected = (int(entry["refs"]), int(columns) * SEGMENTS)
    if refs.shape != expected or not np.isfinite(refs).all() or entry.get("position") not in POSITIONS:
        raise ArtifactError(f"{folder / DISCORD_FILE}: references of shape {refs.shape} (expected {expected}, "
                            "all finite): the model is damaged; use the artifact training wrote, or retrain.")
    return Discord(int(entry["window"]), str(entry["position"]), refs, Scale.from_json(entry["scale"]))


def rows_needed(context_length: int, chunk_length: int, score_window: int, position: str, discord_window: int
                ) -> tuple[int, int]:
    """(before, after): the rows a request must hold before and after a row for the row to be scored as in one
    long request. Its score reads the error vectors of the rows of its score window, each computed in a chunk
    of `chunk_length` rows that the network reads from `context_length` rows before the chunk (forecast.py: up
    to context_length + chunk_length - 1 rows before the row), and the values of its discord subsequence."""
    return _rows_around(context_length + chunk_length - 1, score_window, position, discord_window)


def split_margins(chunk_length: int, score_window: int, position: str, discord_window: int) -> tuple[int, int]:
    """(head, tail) of files cut from one long series (split files: lstm_ad_local/series_files.py), each file
    starting on a multiple of `chunk_length` rows, so that its chunks are the long series' own. A file's first
    chunk lacks the warm-up the long request gives it; from its second on, every chunk is read as in the long
    request. So a row is scored as there when its file holds a chunk and the rows its score window reads before
    it (and its discord subsequence) before it, `head`, and the `tail` rows its score reads after it; files
    overlap by head + tail, a whole number of chunks (so that every file starts on a chunk boundary)."""
    before, after = _rows_around(chunk_length, score_window, position, discord_window)
    chunks = -(-(before + after) // chunk_length)
    return chunks * chunk_length - after, after


def _rows_around(reading: int, score_window: int, position: str, discord_window: int) -> tuple[int, int]:
    """(before, after) a row: `reading` rows of the network's before each row of its score window (whose error
    vectors the score reads), or its discord subsequence (values only) when that reaches further back."""
    window_before = rows_read(score_window, position, 0)[0]
    before, after = rows_read(score_window, position, discord_window)
    return max(reading + window_before, before), after


def rows_read(score_window: int, position: str, discord_window: int) -> tuple[int, int]:
    """(before, after): the rows of its request that a row's score reads before and after it, for a score window
    of `score_window` rows and a discord subsequence of `discord_window` rows (0: none) at `position`."""
    window_before, window_after = window_rows_around(score_window, position)
    if not discord_window:
        return window_before, window_after
    discord_before = subsequence_start(discord_window, position)
    return max(window_before, discord_before), max(window_after, discord_window - 1 - discord_before)
