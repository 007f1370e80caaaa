"""Detection quality of LSTM-AD on real labelled data, side by side with two TSB-AD detectors.

Protocol (../shared/data/README.md):
- UCR series (default: ../shared/data/ucr-dev, 40 series; or any files / folders of files named
  `NNN_UCR_Anomaly_<name>_<trainEnd>_<anomStart>_<anomEnd>.txt`, one value per line, given as
  arguments or with --data): train on rows [0, trainEnd), score every row [trainEnd, N) as ONE
  request whose first context-length rows are warm-up (rows [trainEnd - context-length, N) are
  sent). UCR accuracy: the row with the lowest log-likelihood lies within
  [anomStart - 100, anomEnd + 100]. AUC-PR of the negated log-likelihood against the point labels
  [anomStart, anomEnd). Our model is trained once per seed (--seeds, default 0 1 2); one table row
  per series and seed.
- Halves: the series are split into halves A and B by recording (`split_halves`), so a choice
  tuned on one half can be confirmed on the other; accuracy is reported per half and seed.
- smd-dev (machine-1-2, 38 columns; only when no files are given): train on train/, score test/
  (warm-up from the tail of train/); point-wise AUC-PR and best F1 over all thresholds (no point
  adjustment). Trained once, with the first of --seeds.

Every model is trained by the real `train` entrypoint (`.venv/bin/train`, run with
SAGEMAKER_BASE_DIR pointing at a job folder laid out like /opt/ml) and scored with
`Predictor.load(model_dir).score(...)`, the code path of users and of the server.
Hyperparameters are the product defaults (container/lstm_ad/hyperparameters.py) unless
overridden with --hyperparameters (the seed comes from --seeds). Each job gets the machine's
cores divided by --jobs as torch threads (so one job at a time trains as `train` does on this
machine: one thread replica per core). Training wall time includes starting `train`.

Peers (--peers, default lstmad,subpca; scripts/tsb_ad_peer.py says exactly how they are run and what
differs from TSB-AD's own benchmark), judged on the same scored rows with the same metrics, one
thread each: `lstmad`, TSB-AD 1.5's LSTMAD run by its own `run_LSTMAD` with its released
univariate hyperparameters, fitted on rows [0, trainEnd), once per seed (or only at --peer-seeds:
it takes 30-300 s a series on one thread here), its input z-normalised as
TSB-AD's code does since 1.5 (--lstmad-normalisation none: raw values, as 1.5's dataset class
actually passes them); `subpca`, TSB-AD's
Sub-PCA (first on TSB-AD's univariate leaderboard), fitted on rows [0, trainEnd), deterministic,
so once per series; `mp-ab` and `mp-self` (only when named), matrix-profile discords by stumpy with
no training, deterministic, once per series: each test subsequence against the training part's
(AB-join), or every subsequence of the whole series against the others (self-join, stumpy's exclusion
zone); the subsequence length is the dominant period of rows [0, trainEnd) by our discord term's rule
(`peer_window`, the `mp_window` column); a row's score is the profile value of the subsequence centred
on it. A self-join is quadratic in the series' length: a series with more subsequence pairs than
--mp-max-pairs (default: about 5 minutes on one thread) is skipped, its hit -1 in the table, and the
totals say over how many series each peer's accuracy is and name the others.

--peers-only trains nothing of ours (no ours columns, no smd-dev; with no seeded peer, one row per
series at the first of --seeds) and still prints the table per half. Each series and seed is logged
when complete, with the running tally per half, and --out is rewritten after each: a run stopped part
way keeps its figures.

    .venv/bin/python scripts/bench_quality.py --out bench-out/quality.csv
    .venv/bin/python scripts/bench_quality.py my-series/ --seeds 0 --no-peer
    .venv/bin/python scripts/bench_quality.py ../shared/data/ucr-dev ../shared/data/ucr-extra \
        --peers mp-ab,mp-self --peers-only --out bench-out/mp-peers.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from lstm_ad.hyperparameters import Hyperparameters
from lstm_ad.predictor import Predictor
from lstm_ad.sagemaker.hyperparameters import parse_hyperparameters
from lstm_ad.scoring.discord import MAX_WINDOW, MIN_WINDOW, dominant_period, lag_products

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tsb_ad_peer  # noqa: E402  (a sibling script, not a package)

logger = logging.getLogger("bench_quality")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TRAIN = Path(sys.executable).with_name("train")
UCR_NAME = re.compile(r"^(\d+)_UCR_Anomaly_(.+)_(\d+)_(\d+)_(\d+)\.txt$")
UCR_PATTERN = "NNN_UCR_Anomaly_<name>_<trainEnd>_<anomStart>_<anomEnd>.txt"
UCR_MARGIN = 100
DEFAULT_PEERS = ("lstmad", "subpca")  # the matrix-profile peers (mp-ab, mp-self) run when named in --peers
# About 5 minutes of stumpy on one thread here (150 million subsequence pairs a second, measured on the 2-core
# development VM): above every series of the 140 (the longest self-join, 243_tilt12744mtable, is 3.1e10).
MP_MAX_PAIRS = 4.5e10
VARIANT_PREFIXES = ("DISTORTED", "NOISE")


@dataclass
class Row:
    series: str
    seed: int
    half: str
    rows: int
    train_end: int
    anomaly: str
    ours_row: int = -1
    ours_hit: int = 0
    ours_aucpr: float = float("nan")
    ours_f1: float = float("nan")
    ours_train_s: float = float("nan")
    epochs: int = 0
    best_epoch: int = 0
    lstmad_row: int = -1
    lstmad_hit: int = -1
    lstmad_aucpr: float = float("nan")
    lstmad_s: float = float("nan")
    subpca_row: int = -1
    subpca_hit: int = -1
    subpca_aucpr: float = float("nan")
    subpca_s: float = float("nan")
    mp_window: int = 0  # the matrix-profile peers' subsequence length (peer_window)
    mp_ab_row: int = -1
    mp_ab_hit: int = -1  # -1: not run (a peer not asked for, or over --mp-max-pairs: the log names it)
    mp_ab_aucpr: float = float("nan")
    mp_ab_s: float = float("nan")
    mp_self_row: int = -1
    mp_self_hit: int = -1
    mp_self_aucpr: float = float("nan")
    mp_self_s: float = float("nan")


def column(peer: str) -> str:
    """The prefix of a peer's columns: its name with '-' as '_' (mp-ab -> mp_ab_row, ...)."""
    return peer.replace("-", "_")


# -- metrics -------------------------------------------------------------------------------------

def precision_recall(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at every distinct threshold (higher score = more anomalous)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order].astype(np.float64)
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.cumsum(y)[last_of_tie]
    predicted = last_of_tie + 1
    return tp / predicted, tp / max(y.sum(), 1.0)


def auc_pr(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision: sum over thresholds of precision x recall increase."""
    precision, recall = precision_recall(scores, labels)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def best_f1(scores: np.ndarray, labels: np.ndarray) -> float:
    precision, recall = precision_recall(scores, labels)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(f1.max())


def ucr_hit(row: int, start: int, end: int) -> int:
    return int(start - UCR_MARGIN <= row <= end + UCR_MARGIN)


# -- our detector, through the real entrypoint ---------------------------------------------------

def train_job(job: Path, train: np.ndarray, hyperparameters: dict[str, str], threads: int
              ) -> tuple[Predictor, float]:
    """Run `train` on a job folder laid out like /opt/ml; (loaded predictor, wall seconds)."""
    config = job / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(json.dumps({"training": {
        "ContentType": "text/csv", "TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
        "RecordWrapperType": "None"}}))
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
    channel = job / "input" / "data" / "training"
    channel.mkdir(parents=True, exist_ok=True)
    np.savetxt(channel / "train.csv", train, delimiter=",", fmt="%.10g")
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(job), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    started = time.monotonic()
    done = subprocess.run([str(TRAIN)], env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    (job / "train.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        failure = job / "output" / "failure"
        reason = failure.read_text() if failure.exists() else done.stdout[-2000:]
        raise RuntimeError(f"`train` exited {done.returncode} in {job}: {reason}")
    return Predictor.load(job / "model"), seconds


def score_test(predictor: Predictor, values: np.ndarray, test_start: int) -> np.ndarray:
    """Log-likelihood of rows [test_start, N), warm-up taken from the rows before."""
    c = predictor.context_length
    result = predictor.score(values[test_start - c:])
    return result.score[c:]


# -- UCR files and the fixed split into halves ---------------------------------------------------

class SeriesNameError(ValueError):
    """A series file whose name does not carry the UCR protocol."""


@dataclass(frozen=True)
class UcrSeries:
    path: Path
    number: int
    name: str  # NNN_<name>, e.g. 053_DISTORTEDWalkingAceleration1
    recording: str  # <name> without a leading DISTORTED / NOISE
    train_end: int
    start: int
    end: int


def recording_of(name: str) -> str:
    """The underlying recording of a UCR `<name>`: a leading DISTORTED or NOISE removed."""
    for prefix in VARIANT_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def parse_ucr_name(path: Path) -> UcrSeries:
    """Protocol of one series from its file name; SeriesNameError names the file and the pattern."""
    match = UCR_NAME.match(path.name)
    if not match:
        raise SeriesNameError(f"{path}: the file name does not follow the UCR pattern {UCR_PATTERN} "
                              "(e.g. 053_UCR_Anomaly_DISTORTEDWalkingAceleration1_1500_2764_2995.txt)")
    train_end, start, end = int(match[3]), int(match[4]), int(match[5])
    if not 0 < train_end <= start < end:
        raise SeriesNameError(f"{path}: the name says trainEnd {train_end}, anomaly {start}-{end}; the protocol "
                              "needs 0 < trainEnd <= anomStart < anomEnd")
    number = int(match[1])
    return UcrSeries(path, number, f"{match[1]}_{match[2]}", recording_of(match[2]), train_end, start, end)


def ucr_files(paths: Iterable[Path]) -> list[UcrSeries]:
    """The UCR series in files and folders (a folder: its *.txt files), ordered by number then name.

    Every file given or found must follow UCR_PATTERN; otherwise SeriesNameError names it."""
    found: dict[Path, UcrSeries] = {}
    for path in paths:
        if path.is_dir():
            files = sorted(path.glob("*.txt"))
            if not files:
                raise SeriesNameError(f"{path}: no *.txt series files in this folder (expected {UCR_PATTERN})")
        elif path.is_file():
            files = [path]
        else:
            raise SeriesNameError(f"{path}: no such file or folder")
        for file in files:
            found[file.resolve()] = parse_ucr_name(file)
    by_name: dict[str, Path] = {}
    for series in found.values():
        if by_name.setdefault(series.name, series.path) != series.path:
            raise SeriesNameError(f"{series.path} and {by_name[series.name]}: two files of one series name "
                                  f"{series.name} (NNN_<name> must be unique: it names the job folder and the row)")
    return sorted(found.values(), key=lambda s: (s.number, s.name))


def split_halves(series: Sequence[UcrSeries]) -> dict[str, str]:
    """The fixed split into halves: series name -> "A" or "B".

    Series are grouped by recording (the `<name>` of the file name with a leading DISTORTED or
    NOISE removed: 021_DISTORTEDGP711MarkerLFM5z3, 097_NOISEGP711MarkerLFM5z3 and
    129_GP711MarkerLFM5z3 are one recording); the recordings are ordered by their first series
    number and alternate A, B, A, B, ... (the first is A). All variants of a recording fall in the
    same half: a choice tuned on one half and confirmed on the other would otherwise have seen the
    same recording, which leaks. The split depends only on the series named, never on results.
    On the 40 ucr-dev series: A = 001 013 014 020 022 032 040 049 057 083 113 134 148 157 169 212
    248 249 250 (19 series), B = the other 21.
    """
    first: dict[str, tuple[int, str]] = {}
    for s in series:
        first[s.recording] = min(first.get(s.recording, (s.number, s.name)), (s.number, s.name))
    order = sorted(first, key=lambda r: first[r])
    half_of = {r: "AB"[i % 2] for i, r in enumerate(order)}
    return {s.name: half_of[s.recording] for s in series}


def ucr_series(names: list[str] | None) -> list[tuple[Path, int, int, int]]:
    """ucr-dev's (path, trainEnd, anomStart, anomEnd), names filtered by substring (bench_answers.py)."""
    found = ucr_files([DATA / "ucr-dev"])
    return [(s.path, s.train_end, s.start, s.end) for s in found if not names or any(n in s.path.name for n in names)]


# -- one series ------------------------------------------------------------------------------------

def load_series(series: UcrSeries) -> np.ndarray:
    values = np.loadtxt(series.path, dtype=np.float64).reshape(-1, 1)
    if series.end > len(values):
        raise SeriesNameError(f"{series.path}: the name puts the anomaly at {series.start}-{series.end}, "
                              f"but the file has {len(values)} rows")
    return values


def scored_labels(series: UcrSeries, rows: int) -> np.ndarray:
    labels = np.zeros(rows - series.train_end)
    labels[series.start - series.train_end:series.end - series.train_end] = 1
    return labels


@dataclass
class PeerResult:
    row: int
    hit: int
    aucpr: float
    seconds: float
    window: int = 0  # matrix-profile peers: the subsequence length
    skipped: str = ""  # why the peer did not run on this series (hit -1), e.g. over --mp-max-pairs


def peer_window(train: np.ndarray) -> int:
    """The matrix-profile peers' subsequence length: our discord term's rule with `discord-window` 0
    (lstm_ad/scoring/discord.py discord_window) on the training part [0, trainEnd) z-normalised: its dominant
    period (autocorrelation), else the default context-length clipped to [MIN_WINDOW, MAX_WINDOW].

    One difference: lags stop at rows - 1. `lag_products(parts, MAX_WINDOW)` on a part of at most 1,024 rows
    reads lags past the end of its zero-padded FFT's linear part, where the circular autocorrelation wraps
    round to the short lags (e.g. 032_DISTORTEDInternalBleeding4's 1,000 training rows gave a "period" of
    1,001 rows, 179 with the cap)."""
    x = np.asarray(train, dtype=np.float64)[:, :1]
    sd = float(x.std())
    standardised = (x - x.mean()) / (sd if sd > 0 else 1.0)
    period = dominant_period(lag_products([standardised], min(MAX_WINDOW, len(x) - 1)))
    return period if period is not None else int(np.clip(Hyperparameters().context_length, MIN_WINDOW, MAX_WINDOW))


def matrix_profile_pairs(peer: str, rows: int, train_end: int, window: int) -> int:
    """Subsequence pairs a matrix-profile peer compares (its cost: stumpy's work is proportional to it):
    mp-ab, test subsequences x training subsequences; mp-self, the pairs of the whole series' subsequences."""
    if peer == "mp-ab":
        return max(rows - train_end - window + 1, 0) * max(train_end - window + 1, 0)
    count = max(rows - window + 1, 0)
    return count * (count - 1) // 2


def run_peer(peer: str, python: Path, series: UcrSeries, seed: int, out: Path, normalisation: str = "upstream",
             max_pairs: int | None = None) -> PeerResult:
    """One peer on one series, judged like ours on rows [trainEnd, N). A matrix-profile peer whose series has
    more than `max_pairs` subsequence pairs is not run (hit -1, `skipped` says why)."""
    window = 0
    if peer in tsb_ad_peer.MATRIX_PROFILE_PEERS:
        values = load_series(series)
        window = peer_window(values[:series.train_end])
        pairs = matrix_profile_pairs(peer, len(values), series.train_end, window)
        if max_pairs is not None and pairs > max_pairs:
            return PeerResult(-1, -1, float("nan"), float("nan"), window,
                              f"{pairs:.3g} subsequence pairs (window {window}) > --mp-max-pairs {max_pairs:.3g}")
    scores_file, seconds = tsb_ad_peer.run_peer(python, peer, series.path, series.train_end, seed, out,
                                                normalisation if peer == "lstmad" else "none", window)
    scores = np.load(scores_file)
    labels = scored_labels(series, series.train_end + len(scores))
    row = series.train_end + int(np.argmax(scores))
    return PeerResult(row, ucr_hit(row, series.start, series.end), auc_pr(scores, labels), seconds, window)


def run_ucr(series: UcrSeries, seed: int, half: str, hyperparameters: dict[str, str], work: Path,
            peer_python: Path | None, peers: Sequence[str], threads: int, normalisation: str = "upstream",
            peer_seeds: Sequence[int] | None = None, peers_only: bool = False) -> tuple[Row, dict[str, PeerResult]]:
    """Ours (unless `peers_only`: ours_hit -1) and the seeded peers that run at this seed on one series; (row,
    peer results by name)."""
    values = load_series(series)
    row = Row(series.name, seed, half, len(values), series.train_end, f"{series.start}-{series.end}")
    job = work / series.name / f"seed-{seed}"
    if peers_only:
        row.ours_hit = -1
        job.mkdir(parents=True, exist_ok=True)
    else:
        labels = scored_labels(series, len(values))
        predictor, row.ours_train_s = train_job(job, values[:series.train_end],
                                                dict(hyperparameters, seed=str(seed)), threads)
        row.epochs = predictor.summary.get("epochs_run", 0)
        row.best_epoch = predictor.summary.get("best_epoch", 0)
        log_likelihood = score_test(predictor, values, series.train_end)
        anomaly_score = np.nan_to_num(-log_likelihood, nan=-np.inf, neginf=-np.inf, posinf=np.inf)
        row.ours_row = series.train_end + int(np.argmax(anomaly_score))
        row.ours_hit = ucr_hit(row.ours_row, series.start, series.end)
        row.ours_aucpr = auc_pr(anomaly_score, labels)
        row.ours_f1 = best_f1(anomaly_score, labels)
        np.save(job / "log_likelihood.npy", log_likelihood)
    results = {}
    if peer_python is not None and (peer_seeds is None or seed in peer_seeds):
        for peer in peers:
            if tsb_ad_peer.SEEDED[peer]:  # the unseeded peers run once per series, as tasks of their own
                results[peer] = run_peer(peer, peer_python, series, seed, job / f"{peer}_scores.npy", normalisation)
    return row, results


def report_row(row: Row, results: dict[str, PeerResult], done: list[Row], peers: Sequence[str], ours: bool) -> None:
    """One log line per series and seed as soon as it is complete, then the running tally per half, so that
    a run stopped part way still has its figures in the log."""
    parts = [f"ours row {row.ours_row} hit {row.ours_hit} ({row.ours_train_s:.0f}s)"] if ours else []
    for peer, r in results.items():
        parts.append(f"{peer} NOT RUN: {r.skipped}" if r.skipped else
                     f"{peer} row {r.row} hit {r.hit} aucpr {r.aucpr:.3f} ({r.seconds:.0f}s"
                     + (f", window {r.window})" if r.window else ")"))
    logger.info("%s seed %d half %s: %s", row.series, row.seed, row.half, "; ".join(parts))
    tally = []
    for detector in (["ours"] if ours else []) + list(peers):
        hits = [r for r in done if getattr(r, f"{column(detector)}_hit") >= 0]
        tally.append(f"{detector} " + " ".join(
            f"{h} {sum(getattr(r, f'{column(detector)}_hit') for r in hits if r.half == h)}/"
            f"{sum(r.half == h for r in hits)}" for h in "AB")
            + f" all {sum(getattr(r, f'{column(detector)}_hit') for r in hits)}/{len(hits)}")
    logger.info("so far (%d rows): %s", len(done), "; ".join(tally))


def peer_result(peer: str, future: Future[PeerResult], series: UcrSeries) -> PeerResult:
    """An unseeded peer's result; its failure on one series is that series' `skipped` reason, not the run's end."""
    try:
        return future.result()
    except RuntimeError as exc:
        logger.warning("%s on %s failed: %s", peer, series.name, exc)
        return PeerResult(-1, -1, float("nan"), float("nan"), skipped=f"failed: {str(exc)[:200]}")


def run_all(chosen: Sequence[UcrSeries], halves: dict[str, str], args: argparse.Namespace,
            hyperparameters: dict[str, str], work: Path, peer_python: Path | None, peers: Sequence[str],
            threads: int, on_row: Callable[[list[Row]], None] | None = None) -> list[Row]:
    """Ours per series and seed, seeded peers with them, unseeded peers once per series; --jobs at a time,
    submitted series by series (so that with --jobs 1 each series is complete before the next starts).
    With --peers-only and no seeded peer, one row per series (at the first of --seeds). `on_row(rows so far)`
    after each row is complete."""
    peers_only = getattr(args, "peers_only", False)
    seeds = args.seeds if not peers_only or any(tsb_ad_peer.SEEDED[p] for p in peers) else args.seeds[:1]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        tasks = []
        for s in chosen:
            ours = [pool.submit(run_ucr, s, seed, halves[s.name], hyperparameters, work, peer_python, peers, threads,
                                args.lstmad_normalisation, args.peer_seeds, peers_only) for seed in seeds]
            once = {p: pool.submit(run_peer, p, peer_python, s, 0, work / s.name / f"{p}_scores.npy", "none",
                                   getattr(args, "mp_max_pairs", None))
                    for p in peers if peer_python is not None and not tsb_ad_peer.SEEDED[p]}
            tasks.append((ours, once))
        rows: list[Row] = []
        for ours, once in tasks:
            for future in ours:
                row, results = future.result()
                results.update({p: peer_result(p, f, s) for p, f in once.items()})
                for peer, result in results.items():
                    for key in ("row", "hit", "aucpr", "seconds"):
                        setattr(row, f"{column(peer)}_{'s' if key == 'seconds' else key}", getattr(result, key))
                    row.mp_window = result.window or row.mp_window
                rows.append(row)
                report_row(row, results, rows, peers, not peers_only)
                if on_row is not None:
                    on_row(rows)
    return rows


def run_smd(hyperparameters: dict[str, str], work: Path, threads: int) -> Row | None:
    folder = DATA / "smd-dev"
    if not folder.is_dir():
        return None
    train = np.loadtxt(folder / "train" / "machine-1-2.txt", delimiter=",")
    test = np.loadtxt(folder / "test" / "machine-1-2.txt", delimiter=",")
    labels = np.loadtxt(folder / "test_label" / "machine-1-2.txt")
    row = Row("smd_machine-1-2", int(hyperparameters.get("seed", 0)), "-", len(train) + len(test), len(train),
              f"{int(labels.sum())} rows")
    row.ours_hit = -1  # UCR accuracy does not apply: SMD has many anomalies, judged by AUC-PR and F1
    predictor, row.ours_train_s = train_job(work / "smd", train, hyperparameters, threads)
    row.epochs = predictor.summary.get("epochs_run", 0)
    row.best_epoch = predictor.summary.get("best_epoch", 0)
    log_likelihood = score_test(predictor, np.vstack([train, test]), len(train))
    anomaly_score = np.nan_to_num(-log_likelihood, nan=-np.inf, neginf=-np.inf, posinf=np.inf)
    row.ours_row = len(train) + int(np.argmax(anomaly_score))
    row.ours_aucpr = auc_pr(anomaly_score, labels)
    row.ours_f1 = best_f1(anomaly_score, labels)
    return row


# -- report ----------------------------------------------------------------------------------------

FORMATS = {"ours_aucpr": "{:.3f}", "ours_f1": "{:.3f}", "ours_train_s": "{:.1f}",
           **{f"{column(p)}_aucpr": "{:.3f}" for p in tsb_ad_peer.PEERS},
           **{f"{column(p)}_s": "{:.1f}" for p in tsb_ad_peer.PEERS}}
COLUMNS = tuple(f.name for f in fields(Row))
OURS_COLUMNS = ("ours_row", "ours_hit", "ours_aucpr", "ours_f1", "ours_train_s", "epochs", "best_epoch")


def shown_columns(peers: Sequence[str], ours: bool = True) -> list[str]:
    """The table's columns: those of the peers that ran (mp_window with a matrix-profile peer), ours unless
    --peers-only."""
    hidden = [f"{column(p)}_" for p in tsb_ad_peer.PEERS if p not in peers]
    return [c for c in COLUMNS if not any(c.startswith(h) for h in hidden)
            and (ours or c not in OURS_COLUMNS)
            and (c != "mp_window" or any(p in tsb_ad_peer.MATRIX_PROFILE_PEERS for p in peers))]


def print_table(rows: list[Row], peers: Sequence[str], ours: bool = True) -> None:
    shown = shown_columns(peers, ours)
    cells = [[FORMATS.get(c, "{}").format(getattr(r, c)) for c in shown] for r in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(shown)]
    print("  ".join(c.ljust(w) for c, w in zip(shown, widths, strict=True)))
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))


def _mean(values: Iterable[float]) -> float | None:
    kept = list(values)
    return round(float(np.mean(kept)), 4) if kept else None


def _seconds(values: Iterable[float]) -> dict[str, float | None]:
    kept = [v for v in values if np.isfinite(v)]
    if not kept:
        return {"median": None, "max": None, "total": None}
    return {"median": round(float(np.median(kept)), 1), "max": round(float(np.max(kept)), 1),
            "total": round(float(np.sum(kept)), 1)}


def totals(rows: list[Row], seeds: Sequence[int], peers: Sequence[str], peer_seeds: Sequence[int] | None = None,
           ours: bool = True) -> dict[str, object]:
    """UCR accuracy and mean AUC-PR per seed, per half and seed, means over seeds, wall times; seeded peers
    over the seeds they ran at (`peer_seeds`, default all). Unseeded peers over the series they ran on (hit
    >= 0); `not_run` names the others. `ours` False (--peers-only): no entry for ours."""
    series = sorted({r.series for r in rows})
    found: dict[str, object] = {"series": len(series), "seeds": list(seeds),
                                "halves": {h: len({r.series for r in rows if r.half == h}) for h in "AB"}}
    detectors = (["ours"] if ours else []) + [p for p in peers if tsb_ad_peer.SEEDED[p]]
    for detector in detectors:
        hit, aucpr = f"{column(detector)}_hit", f"{column(detector)}_aucpr"
        per_seed = {}
        for seed in seeds if detector == "ours" or peer_seeds is None else [t for t in seeds if t in peer_seeds]:
            at = [r for r in rows if r.seed == seed]
            per_seed[str(seed)] = {
                "accuracy": _mean(getattr(r, hit) for r in at),
                "hits": sum(getattr(r, hit) for r in at),
                **{f"accuracy_{h}": _mean(getattr(r, hit) for r in at if r.half == h) for h in "AB"},
                "mean_aucpr": _mean(getattr(r, aucpr) for r in at)}
        found[detector] = {"per_seed": per_seed, **{
            key: _mean(v[key] for v in per_seed.values() if v[key] is not None)
            for key in ("accuracy", "accuracy_A", "accuracy_B", "mean_aucpr")}}
    if ours:
        found["ours"]["train_s"] = _seconds(r.ours_train_s for r in rows)  # type: ignore[index]
    for peer in peers:
        hit, aucpr = f"{column(peer)}_hit", f"{column(peer)}_aucpr"
        once = (list({r.series: r for r in rows}.values()) if not tsb_ad_peer.SEEDED[peer]
                else [r for r in rows if peer_seeds is None or r.seed in peer_seeds])
        if not tsb_ad_peer.SEEDED[peer]:  # deterministic: one run per series, the same for every seed
            ran = [r for r in once if getattr(r, hit) >= 0]
            found[peer] = {"accuracy": _mean(getattr(r, hit) for r in ran),
                           "hits": sum(getattr(r, hit) for r in ran), "ran": len(ran),
                           **{f"accuracy_{h}": _mean(getattr(r, hit) for r in ran if r.half == h) for h in "AB"},
                           **{f"ran_{h}": sum(r.half == h for r in ran) for h in "AB"},
                           "mean_aucpr": _mean(getattr(r, aucpr) for r in ran),
                           "not_run": [r.series for r in once if getattr(r, hit) < 0]}
        found[peer]["s"] = _seconds(getattr(r, f"{column(peer)}_s") for r in once)  # type: ignore[index]
    return found


def print_totals(found: dict[str, object], peers: Sequence[str], ours: bool = True) -> None:
    def cell(value: object) -> str:
        return "-" if value is None else f"{value:.3f}"

    n, halves = found["series"], found["halves"]
    print(f"\nUCR accuracy over {n} series (half A: {halves['A']}, half B: {halves['B']})")  # type: ignore[index]
    print(f"{'detector':<10}{'seed':>6}{'accuracy':>16}{'half A':>9}{'half B':>9}{'mean AUC-PR':>13}")
    for detector in (["ours"] if ours else []) + list(peers):
        entry = found[detector]
        assert isinstance(entry, dict)
        lines = [(s, v) for s, v in entry.get("per_seed", {}).items()]
        lines.append(("mean" if "per_seed" in entry else "-", entry))
        for seed, v in lines:
            hits = f" ({v['hits']}/{v.get('ran', n)})" if "hits" in v else ""
            print(f"{detector:<10}{seed:>6}{cell(v['accuracy']) + hits:>16}{cell(v['accuracy_A']):>9}"
                  f"{cell(v['accuracy_B']):>9}{cell(v['mean_aucpr']):>13}")
    if ours:
        entry = found["ours"]
        assert isinstance(entry, dict)
        print("ours: training wall time per series and seed: median {median} s, max {max} s, total {total} s"
              .format(**entry["train_s"]))
    for peer in peers:
        entry = found[peer]
        assert isinstance(entry, dict)
        once = "" if tsb_ad_peer.SEEDED[peer] else " (deterministic: once per series)"
        print(f"{peer}: wall time per run (fit + score): median {entry['s']['median']} s, max {entry['s']['max']} s, "
              f"total {entry['s']['total']} s{once}")
        if entry.get("not_run"):
            print(f"{peer}: NOT RUN on {len(entry['not_run'])} series (accuracy above is over the "
                  f"{entry['ran']} it ran on; the log says why): {' '.join(entry['not_run'])}")


# -- command line ----------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help=f"UCR series files or folders of them, named {UCR_PATTERN} "
                             "(default: ../shared/data/ucr-dev, and smd-dev)")
    parser.add_argument("--data", nargs="+", type=Path, default=[], metavar="PATH", help="more files or folders")
    parser.add_argument("--series", nargs="*", help="substrings of file names to run (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="our seeds (default: 0 1 2)")
    parser.add_argument("--hyperparameters", nargs="*", default=[], metavar="NAME=VALUE",
                        help="overrides of the product defaults, e.g. epochs=5 hidden-size=16 (not seed: see --seeds)")
    parser.add_argument("--jobs", type=int, default=1, help="series trained in parallel")
    parser.add_argument("--threads-per-job", type=int,
                        help="torch threads of each `train` (default: CPU cores // jobs, at least 1)")
    parser.add_argument("--out", type=Path, help="write the per-series table as CSV")
    parser.add_argument("--work", type=Path, help="job folders (default: a temporary folder)")
    parser.add_argument("--peers", default=",".join(DEFAULT_PEERS),
                        help=f"comma-separated peers to run, among {','.join(tsb_ad_peer.PEERS)} "
                             f"(default: {','.join(DEFAULT_PEERS)})")
    parser.add_argument("--peers-only", action="store_true",
                        help="run only the peers: ours is not trained (no ours columns, no smd-dev); with no seeded "
                             "peer, one row per series")
    parser.add_argument("--mp-max-pairs", type=float, default=MP_MAX_PAIRS,
                        help="the matrix-profile peers skip a series with more subsequence pairs than this (its "
                             f"cost; default {MP_MAX_PAIRS:.3g}: about 5 minutes on one thread here); the table "
                             "and the totals name the series skipped")
    parser.add_argument("--lstmad-normalisation", choices=tsb_ad_peer.NORMALISATIONS, default="upstream",
                        help="upstream (default): as TSB-AD's code since 1.5, each dataset z-normalised with its "
                             "own statistics; none: 1.5 exactly as released (raw values); see scripts/tsb_ad_peer.py")
    parser.add_argument("--peer-seeds", nargs="+", type=int, metavar="SEED",
                        help="seeds at which the seeded peers run (default: all of --seeds); TSB-AD's LSTMAD costs "
                             "30-75 s a series on one thread here")
    parser.add_argument("--no-peer", action="store_true", help="run no peer")
    parser.add_argument("--no-smd", action="store_true", help="skip smd-dev")
    args = parser.parse_args(argv)
    args.peers = [] if args.no_peer else [p.strip() for p in args.peers.split(",") if p.strip()]
    if args.peers_only and not args.peers:
        parser.error("--peers-only needs at least one peer (--peers), not --no-peer")
    unknown = [p for p in args.peers if p not in tsb_ad_peer.PEERS]
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(tsb_ad_peer.PEERS)}")
    if args.peer_seeds and not set(args.peer_seeds) <= set(args.seeds):
        parser.error(f"--peer-seeds {args.peer_seeds} must be among --seeds {args.seeds}")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds repeats a seed: {args.seeds}")
    if any(pair.partition("=")[0].strip() == "seed" for pair in args.hyperparameters):
        parser.error("give seeds with --seeds, not --hyperparameters seed=...")
    return args


def overrides(pairs: list[str]) -> dict[str, str]:
    found = {"seed": "0"}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--hyperparameters takes NAME=VALUE pairs, got {pair!r}")
        found[name.strip()] = value.strip()
    parse_hyperparameters(found)  # fail fast, with the product's own message, on a bad override
    return found


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    given = [*args.paths, *args.data]
    if not given and not (DATA / "ucr-dev").is_dir():
        print(f"SKIPPED: {DATA / 'ucr-dev'} is absent; the quality benchmark needs ../shared/data "
              "beside the repository, or series files given as arguments.")
        return 0
    try:
        every = ucr_files(given or [DATA / "ucr-dev"])
    except SeriesNameError as exc:
        raise SystemExit(f"bench_quality.py: {exc}") from None
    halves = split_halves(every)  # on every series given, so that --series never moves one to the other half
    chosen = [s for s in every if not args.series or any(n in s.path.name for n in args.series)]
    if not chosen:
        raise SystemExit(f"bench_quality.py: no series matches --series {' '.join(args.series or [])}")
    torch.set_num_threads(1)
    hyperparameters = overrides(args.hyperparameters)
    threads = args.threads_per_job or max(1, (os.cpu_count() or 1) // max(1, args.jobs))
    print("hyperparameters:", json.dumps(parse_hyperparameters(hyperparameters).to_json()))
    seeds = args.seeds if not args.peers_only or any(tsb_ad_peer.SEEDED[p] for p in args.peers) else args.seeds[:1]
    print(f"run: {len(chosen)} series x seeds {' '.join(map(str, seeds))}"
          + (" (--peers-only: ours not trained)" if args.peers_only else "")
          + f"; jobs: {max(1, args.jobs)} at a time, {threads} torch thread(s) each; "
          f"peers: {', '.join(args.peers) or 'none'}"
          + (f" (lstmad normalisation: {args.lstmad_normalisation})" if "lstmad" in args.peers else ""))
    peers: list[str] = args.peers
    peer_python = None
    if peers:
        try:
            peer_python = tsb_ad_peer.ensure_venv(tsb_ad_peer.peer_venv())
        except tsb_ad_peer.PeerUnavailable as exc:
            print(f"PEERS SKIPPED: {exc}")
            peers = []
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        try:
            rows = run_all(chosen, halves, args, hyperparameters, work, peer_python, peers, threads,
                           lambda done: write_csv(args.out, done) if args.out else None)
        except SeriesNameError as exc:  # a file whose rows contradict its name
            raise SystemExit(f"bench_quality.py: {exc}") from None
        smd = (None if args.no_smd or given or args.peers_only
               else run_smd(dict(hyperparameters, seed=str(args.seeds[0])), work, threads))
    ours = not args.peers_only
    print_table(rows + ([smd] if smd else []), peers, ours)
    found = totals(rows, sorted({r.seed for r in rows}, key=args.seeds.index), peers, args.peer_seeds, ours)
    if "lstmad" in peers:
        found["lstmad"]["normalisation"] = args.lstmad_normalisation  # type: ignore[index]
    print_totals(found, peers, ours)
    print("totals:", json.dumps(found))
    if smd:
        print("smd:", json.dumps({"seed": args.seeds[0], "aucpr": round(smd.ours_aucpr, 4),
                                  "best_f1": round(smd.ours_f1, 4), "train_s": round(smd.ours_train_s, 1)}))
    if args.out:
        write_csv(args.out, rows + ([smd] if smd else []))
    return 0


def write_csv(out: Path, rows: list[Row]) -> None:
    """The per-series table as CSV, every column (rewritten after each series: a stopped run keeps its rows)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


if __name__ == "__main__":
    sys.exit(main())
