"""Detection quality of LSTM-AD on real labelled data, side by side with TSB-AD's LSTMAD.

Protocol (../shared/data/README.md):
- ucr-dev (17 univariate series): train on rows [0, trainEnd), score every row
  [trainEnd, N) as ONE request whose first context-length rows are warm-up (rows
  [trainEnd - context-length, N) are sent). UCR accuracy: the row with the lowest
  log-likelihood lies within [anomStart - 100, anomEnd + 100]. AUC-PR of the negated
  log-likelihood against the point labels [anomStart, anomEnd).
- smd-dev (machine-1-2, 38 columns): train on train/, score test/ (warm-up from the
  tail of train/); point-wise AUC-PR and best F1 over all thresholds (no point adjustment).

Every model is trained by the real `train` entrypoint (`.venv/bin/train`, run with
SAGEMAKER_BASE_DIR pointing at a job folder laid out like /opt/ml) and scored with
`Predictor.load(model_dir).score(...)`, the code path of users and of the server.
Hyperparameters are the product defaults (container/lstm_ad/hyperparameters.py) unless
overridden with --hyperparameters; seed 0. Each job gets the machine's cores divided
by --jobs as torch threads (so one job at a time trains as `train` does on this
machine: one mini-batch shard per core); the peer gets one thread.

    .venv/bin/python scripts/bench_quality.py --out bench-out/quality.csv
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from lstm_ad.predictor import Predictor
from lstm_ad.sagemaker.hyperparameters import parse_hyperparameters

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tsb_ad_peer  # noqa: E402  (a sibling script, not a package)

logger = logging.getLogger("bench_quality")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TRAIN = Path(sys.executable).with_name("train")
UCR_NAME = re.compile(r"^(\d+)_UCR_Anomaly_(.+)_(\d+)_(\d+)_(\d+)\.txt$")
UCR_MARGIN = 100


@dataclass
class Row:
    series: str
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
    peer_row: int = -1
    peer_hit: int = 0
    peer_aucpr: float = float("nan")
    peer_s: float = float("nan")


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
    return result.log_likelihood[c:]


# -- ucr-dev ---------------------------------------------------------------------------------------

def ucr_series(names: list[str] | None) -> list[tuple[Path, int, int, int]]:
    found = []
    for path in sorted((DATA / "ucr-dev").glob("*.txt")):
        match = UCR_NAME.match(path.name)
        if match and (not names or any(n in path.name for n in names)):
            found.append((path, int(match[3]), int(match[4]), int(match[5])))
    return found


def run_ucr(item: tuple[Path, int, int, int], hyperparameters: dict[str, str], work: Path,
            peer_python: Path | None, threads: int) -> Row:
    path, train_end, start, end = item
    values = np.loadtxt(path, dtype=np.float64).reshape(-1, 1)
    name = path.name.split("_UCR_Anomaly_")[0] + "_" + UCR_NAME.match(path.name)[2]  # type: ignore[index]
    row = Row(name, len(values), train_end, f"{start}-{end}")
    labels = np.zeros(len(values) - train_end)
    labels[start - train_end:end - train_end] = 1
    predictor, row.ours_train_s = train_job(work / name, values[:train_end], hyperparameters, threads)
    row.epochs = predictor.summary.get("epochs_run", 0)
    row.best_epoch = predictor.summary.get("best_epoch", 0)
    log_likelihood = score_test(predictor, values, train_end)
    anomaly_score = np.nan_to_num(-log_likelihood, nan=-np.inf, neginf=-np.inf, posinf=np.inf)
    row.ours_row = train_end + int(np.argmax(anomaly_score))
    row.ours_hit = ucr_hit(row.ours_row, start, end)
    row.ours_aucpr = auc_pr(anomaly_score, labels)
    row.ours_f1 = best_f1(anomaly_score, labels)
    np.save(work / name / "log_likelihood.npy", log_likelihood)
    if peer_python is not None:
        scores_file, row.peer_s = tsb_ad_peer.run_peer(peer_python, path, train_end, 0,
                                                       work / name / "peer_scores.npy")
        peer_scores = np.load(scores_file)
        row.peer_row = train_end + int(np.argmax(peer_scores))
        row.peer_hit = ucr_hit(row.peer_row, start, end)
        row.peer_aucpr = auc_pr(peer_scores, labels)
    logger.info("%s: ours row %d hit %d (%.0fs), peer row %d hit %d", name, row.ours_row, row.ours_hit,
                row.ours_train_s, row.peer_row, row.peer_hit)
    return row


def run_smd(hyperparameters: dict[str, str], work: Path, threads: int) -> Row | None:
    folder = DATA / "smd-dev"
    if not folder.is_dir():
        return None
    train = np.loadtxt(folder / "train" / "machine-1-2.txt", delimiter=",")
    test = np.loadtxt(folder / "test" / "machine-1-2.txt", delimiter=",")
    labels = np.loadtxt(folder / "test_label" / "machine-1-2.txt")
    row = Row("smd_machine-1-2", len(train) + len(test), len(train), f"{int(labels.sum())} rows")
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

COLUMNS = (("series", "{}"), ("rows", "{}"), ("train_end", "{}"), ("anomaly", "{}"), ("ours_row", "{}"),
           ("ours_hit", "{}"), ("ours_aucpr", "{:.3f}"), ("ours_f1", "{:.3f}"), ("ours_train_s", "{:.1f}"),
           ("epochs", "{}"), ("best_epoch", "{}"), ("peer_row", "{}"), ("peer_hit", "{}"),
           ("peer_aucpr", "{:.3f}"), ("peer_s", "{:.1f}"))


def print_table(rows: list[Row]) -> None:
    cells = [[fmt.format(getattr(r, name)) for name, fmt in COLUMNS] for r in rows]
    widths = [max(len(name), *(len(c[i]) for c in cells)) for i, (name, _) in enumerate(COLUMNS)]
    print("  ".join(name.ljust(w) for (name, _), w in zip(COLUMNS, widths, strict=True)))
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))


def totals(ucr: list[Row], with_peer: bool) -> dict[str, float]:
    found = {"series": len(ucr), "ours_ucr_accuracy": float(np.mean([r.ours_hit for r in ucr])),
             "ours_mean_aucpr": float(np.mean([r.ours_aucpr for r in ucr])),
             "ours_train_s_total": float(sum(r.ours_train_s for r in ucr)),
             "ours_train_s_max": float(max(r.ours_train_s for r in ucr))}
    if with_peer:
        found.update({"peer_ucr_accuracy": float(np.mean([r.peer_hit for r in ucr])),
                      "peer_mean_aucpr": float(np.mean([r.peer_aucpr for r in ucr])),
                      "peer_s_total": float(sum(r.peer_s for r in ucr))})
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", nargs="*", help="substrings of ucr-dev file names to run (default: all)")
    parser.add_argument("--hyperparameters", nargs="*", default=[], metavar="NAME=VALUE",
                        help="overrides of the product defaults, e.g. epochs=5 hidden-size=16")
    parser.add_argument("--jobs", type=int, default=1, help="series trained in parallel")
    parser.add_argument("--threads-per-job", type=int,
                        help="torch threads of each `train` (default: CPU cores // jobs, at least 1)")
    parser.add_argument("--out", type=Path, help="write the per-series table as CSV")
    parser.add_argument("--work", type=Path, help="job folders (default: a temporary folder)")
    parser.add_argument("--no-peer", action="store_true", help="skip TSB-AD's LSTMAD")
    parser.add_argument("--no-smd", action="store_true", help="skip smd-dev")
    return parser.parse_args(argv)


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
    if not (DATA / "ucr-dev").is_dir():
        print(f"SKIPPED: {DATA / 'ucr-dev'} is absent; the quality benchmark needs ../shared/data "
              "beside the repository.")
        return 0
    torch.set_num_threads(1)
    hyperparameters = overrides(args.hyperparameters)
    threads = args.threads_per_job or max(1, (os.cpu_count() or 1) // max(1, args.jobs))
    print("hyperparameters:", json.dumps(parse_hyperparameters(hyperparameters).to_json()))
    print(f"jobs: {max(1, args.jobs)} at a time, {threads} torch thread(s) each")
    peer_python = None
    if not args.no_peer:
        try:
            peer_python = tsb_ad_peer.ensure_venv(REPO / "bench-out" / ".venv-tsbad")
        except tsb_ad_peer.PeerUnavailable as exc:
            print(f"PEER SKIPPED: {exc}")
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        items = ucr_series(args.series)
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            rows = list(pool.map(lambda item: run_ucr(item, hyperparameters, work, peer_python, threads), items))
        smd = None if args.no_smd else run_smd(hyperparameters, work, threads)
    print_table(rows + ([smd] if smd else []))
    if rows:
        print("totals:", json.dumps(totals(rows, peer_python is not None)))
    if smd:
        print("smd:", json.dumps({"aucpr": round(smd.ours_aucpr, 4), "best_f1": round(smd.ours_f1, 4),
                                  "train_s": round(smd.ours_train_s, 1)}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[name for name, _ in COLUMNS])
            writer.writeheader()
            writer.writerows(asdict(r) for r in rows + ([smd] if smd else []))
    return 0


if __name__ == "__main__":
    sys.exit(main())
