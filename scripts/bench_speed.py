"""Training and inference speed of LSTM-AD, against a straightforward reference loop.

Training: 100 epochs of the ECG example configuration (a generated ECG-like series of
23,000 rows, calibration-fraction 0.2 -> 18,400 fitting rows; context-length 100,
prediction-length 10, sequence-stride 10, hidden-size 32, num-layers 2, batch-size 128,
no early stopping) through `lstm_ad.training.train`, the function the `train`
entrypoint calls, including its per-epoch calibration pass, in a process set up as the
entrypoint sets up its own (`allocator.retain_freed_memory`). The reference is the same
network, loss and optimiser written as tutorial code: a torch Dataset whose
`__getitem__` cuts one window and its target matrix, a shuffling DataLoader, per-batch
loss, and a validation pass over the calibration windows each epoch. It runs first, with
the C library's default allocator settings (they cannot be undone once changed), and
once more after them, to show how much of the speed-up the allocator settings give.

Inference: `Predictor.score` on 32k and 1M rows. Peak memory: ru_maxrss of this process.

    .venv/bin/python scripts/bench_speed.py            # the full measurement
    .venv/bin/python scripts/bench_speed.py --quick    # 2 epochs and 32k rows only (tests)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lstm_ad import training
from lstm_ad.data import Series
from lstm_ad.hyperparameters import Hyperparameters
from lstm_ad.parallel import threads
from lstm_ad.sagemaker.process import retain_freed_memory
from lstm_ad.split import split_point

REPO = Path(__file__).resolve().parents[1]
ECG = Hyperparameters(context_length=100, prediction_length=10, sequence_stride=10, hidden_size=32,
                      num_layers=2, batch_size=128, epochs=100, early_stopping_patience=0,
                      dropout=0.0, lr=1e-3, calibration_fraction=0.2, seed=0)
ROWS = 23_000


def ecg_like(rows: int, seed: int = 0) -> np.ndarray:
    """Heartbeats (P wave, QRS spike, T wave) with jittered period and noise: (rows, 1)."""
    rng = np.random.default_rng(seed)
    beats, t = [], 0
    while t < rows:
        period = int(rng.integers(90, 130))
        x = np.linspace(0, 1, period, endpoint=False)
        beat = (0.15 * np.exp(-((x - 0.2) / 0.04) ** 2) + 1.0 * np.exp(-((x - 0.4) / 0.012) ** 2)
                - 0.2 * np.exp(-((x - 0.43) / 0.015) ** 2) + 0.3 * np.exp(-((x - 0.7) / 0.06) ** 2))
        beats.append(beat)
        t += period
    return (np.concatenate(beats)[:rows] + 0.02 * rng.standard_normal(rows))[:, None]


# -- the straightforward reference -------------------------------------------------------------

class WindowDataset(Dataset):
    """Tutorial style: one (input, targets) pair cut per __getitem__ call."""

    def __init__(self, values: np.ndarray, hp: Hyperparameters):
        self.values, self.hp = values.astype(np.float32), hp
        self.starts = list(range(0, len(values) - hp.context_length - hp.prediction_length + 1,
                                 hp.sequence_stride))

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        s, c, h = self.starts[i], self.hp.context_length, self.hp.prediction_length
        window = torch.from_numpy(self.values[s:s + c + h])
        # Row t+k is the target of step t at horizon k.
        targets = window[1:].unfold(0, h, 1).permute(0, 2, 1)
        return window[:c], targets  # (c, columns), (c, horizon, columns)


class ReferenceLSTM(nn.Module):
    def __init__(self, columns: int, hp: Hyperparameters):
        super().__init__()
        self.horizon, self.columns = hp.prediction_length, columns
        self.lstm = nn.LSTM(columns, hp.hidden_size, hp.num_layers, batch_first=True,
                            dropout=hp.dropout if hp.num_layers > 1 else 0.0)
        self.head = nn.Linear(hp.hidden_size, hp.prediction_length * columns)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out).view(x.shape[0], x.shape[1], self.horizon, self.columns)


def reference_train(values: np.ndarray, hp: Hyperparameters) -> float:
    """The same network, loss and optimiser, written plainly; returns wall seconds."""
    torch.manual_seed(hp.seed)
    cut = split_point(len(values), hp.calibration_fraction)
    mean, std = values[:cut].mean(axis=0), values[:cut].std(axis=0)
    scaled = (values - mean) / std
    train_loader = DataLoader(WindowDataset(scaled[:cut], hp), batch_size=hp.batch_size, shuffle=True)
    valid_loader = DataLoader(WindowDataset(scaled[cut - hp.context_length:], hp), batch_size=hp.batch_size)
    model = ReferenceLSTM(values.shape[1], hp)
    optimizer = torch.optim.Adam(model.parameters(), lr=hp.lr)
    started = time.monotonic()
    for _epoch in range(hp.epochs):
        model.train()
        for x, y in train_loader:
            loss = (model(x)[:, hp.burn_in:] - y[:, hp.burn_in:]).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=5.0)
            optimizer.step()
        model.eval()
        with torch.no_grad():
            sum(float((model(x)[:, hp.burn_in:] - y[:, hp.burn_in:]).pow(2).mean()) for x, y in valid_loader)
    return time.monotonic() - started


# -- measurements ------------------------------------------------------------------------------

def windows_per_epoch(hp: Hyperparameters, rows: int) -> int:
    fit_rows = split_point(rows, hp.calibration_fraction)
    return len(range(0, fit_rows - hp.context_length - hp.prediction_length + 1, hp.sequence_stride))


def measure_training(values: np.ndarray, hp: Hyperparameters) -> tuple[training.TrainingResult, float]:
    started = time.monotonic()
    result = training.train([Series("ecg", values)], hp, device=torch.device("cpu"))
    return result, time.monotonic() - started


def measure_scoring(predictor: object, rows: int) -> tuple[float, float]:
    values = ecg_like(rows, seed=1)
    started = time.monotonic()
    predictor.score(values)  # type: ignore[attr-defined]
    seconds = time.monotonic() - started
    return seconds, rows / seconds


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def print_table(rows: list[tuple[str, str, str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 epochs, 32k rows only (a smoke test)")
    parser.add_argument("--epochs", type=int, help="override the 100 epochs")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference loop")
    parser.add_argument("--no-breakdown", action="store_true",
                        help="skip the second reference run (with the allocator settings)")
    parser.add_argument("--serve", action="store_true", help="also run scripts/bench_serve.py if present")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    hp = dataclasses.replace(ECG, epochs=args.epochs or (2 if args.quick else ECG.epochs))
    values = ecg_like(ROWS)
    windows = windows_per_epoch(hp, ROWS) * hp.epochs
    table = [("measurement", "value", "unit"),
             ("machine", f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads", ""),
             ("epochs", str(hp.epochs), f"x {windows // hp.epochs} windows of {hp.context_length} + "
                                        f"{hp.prediction_length} rows")]
    reference_s = None if args.no_reference else reference_train(values, hp)
    applied = retain_freed_memory()  # what the `train` and `serve` entrypoints do first
    table.append(("allocator settings", "applied" if applied else "not applied", "(lstm_ad/sagemaker/process.py)"))
    if reference_s is not None and applied and not args.no_breakdown:
        tuned_s = reference_train(values, hp)
        table += [("reference + allocator wall", f"{tuned_s:.2f}", "s")]
    replicas = threads.replica_count(torch.device("cpu"), hp.batch_size, hp.dropout)
    result, ours_s = measure_training(values, hp)
    table += [("ours train wall", f"{ours_s:.2f}", f"s ({replicas} thread replica(s) per mini-batch)"),
              ("ours train throughput", f"{windows / ours_s:.0f}", "windows/s")]
    if reference_s is not None:
        table += [("reference train wall", f"{reference_s:.2f}", "s"),
                  ("reference train throughput", f"{windows / reference_s:.0f}", "windows/s"),
                  ("speed-up over reference", f"{reference_s / ours_s:.2f}", "x")]
    for rows in (32_000,) if args.quick else (32_000, 1_000_000):
        seconds, rate = measure_scoring(result.predictor, rows)
        table += [(f"score {rows} rows wall", f"{seconds:.2f}", "s"),
                  (f"score {rows} rows throughput", f"{rate:.0f}", "rows/s")]
    table.append(("peak memory (ru_maxrss)", f"{peak_rss_mib():.0f}", "MiB"))
    print_table(table)
    serve = REPO / "scripts" / "bench_serve.py"
    if args.serve and serve.exists():
        print(json.dumps({"bench_serve": str(serve)}))
        return subprocess.run([sys.executable, str(serve)]).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
