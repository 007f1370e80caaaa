"""Where `train`'s fixed costs go: start-up before the first epoch, and the passes after the last.

Runs the real `train` entrypoint (one epoch, defaults otherwise) on two shapes of data that made
these costs show: 200 files of 40 rows, and one file of 8,000 rows. From its log it reads
- start-up: from launching the process to its "Training on" line (imports, reading the data),
- final passes: its "Calibration and final metrics done in X s" line (run on one torch thread).

References measured in the same run, in this process or fresh interpreters:
- optimiser: building torch.optim.Adam and taking one step in a fresh interpreter (it imports
  torch._dynamo), against lstm_ad.adam.Adam doing the same;
- final passes on all cores: the same forward passes (forecast_errors over the fitting and
  calibration parts, what training.streaming_errors runs on one thread) with torch's default
  thread count, against one thread.

    .venv/bin/python scripts/bench_startup.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from lstm_ad import training
from lstm_ad.data import Series
from lstm_ad.forecast import forecast_errors
from lstm_ad.hyperparameters import validate
from lstm_ad.sagemaker.paths import Paths, write_training_config
from lstm_ad.split import split_point

BIN = Path(sys.executable).parent
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
CASES = {"200 files x 40 rows": (200, 40), "1 file x 8,000 rows": (1, 8000)}


def wave(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.sin(np.arange(rows) / 7.0) + 0.05 * rng.standard_normal(rows))[:, None]


def hyperparameters(rows: int) -> dict[str, object]:
    # 40-row files need a context that fits their fitting part (32 rows): context 20, prediction 5.
    return {"epochs": 1, "context-length": 20, "prediction-length": 5} if rows < 200 else {"epochs": 1}


def run_train(base: Path, files: int, rows: int) -> tuple[float, float, float]:
    """(seconds to the "Training on" line, final-pass seconds from the log, total wall seconds)."""
    paths = Paths(base)
    write_training_config(paths, ["training"], hyperparameters(rows))
    channel = paths.channel("training")
    channel.mkdir(parents=True)
    for index in range(files):
        np.savetxt(channel / f"part-{index:03d}.csv", wave(rows, index), fmt="%.6f")
    launched = datetime.now()
    started = time.monotonic()
    done = subprocess.run([str(BIN / "train")], env={**os.environ, "SAGEMAKER_BASE_DIR": str(base)},
                          capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"train failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    start_up = final = float("nan")
    for line in done.stdout.splitlines():
        stamp = STAMP.match(line)
        if stamp and "Training on" in line and start_up != start_up:
            start_up = (datetime.strptime(stamp[1], "%Y-%m-%d %H:%M:%S,%f") - launched).total_seconds()
        found = re.search(r"Calibration and final metrics done in ([0-9.]+)s", line)
        if found:
            final = float(found[1])
    return start_up, final, wall


def optimiser_seconds(which: str) -> float:
    """A fresh interpreter builds the optimiser and takes one step; seconds after `import torch`."""
    build = ("torch.optim.Adam(net.parameters(), lr=1e-3, foreach=True)" if which == "torch"
             else "__import__('lstm_ad.adam').adam.Adam(net.parameters(), lr=1e-3)")
    code = ("import time, torch; net = torch.nn.LSTM(1, 32, 2); t = time.monotonic(); "
            f"o = {build}; net(torch.zeros(5, 1, 1))[0].sum().backward(); o.step(); print(time.monotonic() - t)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def forward_passes_seconds(files: int, rows: int, threads: int) -> float:
    """The final passes' forward work (fitting + calibration parts) with `threads` torch threads."""
    hp = validate(hyperparameters(rows))
    series = [Series(f"s{i}", wave(rows, i)) for i in range(files)]
    predictor = training.train(series, hp).predictor
    network = predictor.network
    cut = [split_point(rows, hp.calibration_fraction)] * files
    fit = [predictor.standardise(s.values[:c]) for s, c in zip(series, cut, strict=True)]
    calibration = [predictor.standardise(s.values[max(0, c - hp.context_length):])
                   for s, c in zip(series, cut, strict=True)]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        started = time.monotonic()
        for part in calibration + fit:  # forecast_errors itself: streaming_errors always uses one thread
            forecast_errors(network, part, hp.context_length, predictor.chunk_length)
        return time.monotonic() - started
    finally:
        torch.set_num_threads(before)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (the median is shown)")
    args = parser.parse_args(argv)
    cores = torch.get_num_threads()
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, load average "
          f"{os.getloadavg()[0]:.2f}; medians of {args.repeat} runs")
    ours = np.median([optimiser_seconds("ours") for _ in range(args.repeat)])
    theirs = np.median([optimiser_seconds("torch") for _ in range(args.repeat)])
    print(f"optimiser built + one step in a fresh interpreter: torch.optim.Adam {theirs:.2f}s, "
          f"lstm_ad.adam.Adam {ours:.3f}s (saves {theirs - ours:.2f}s)")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as work:
        for label, (files, rows) in CASES.items():
            runs = [run_train(Path(work) / f"{files}x{rows}-{i}", files, rows) for i in range(args.repeat)]
            start_up, final, wall = (float(np.median(column)) for column in zip(*runs, strict=True))
            many = np.median([forward_passes_seconds(files, rows, cores) for _ in range(args.repeat)])
            one = np.median([forward_passes_seconds(files, rows, 1) for _ in range(args.repeat)])
            print(f"{label}: train wall {wall:.1f}s, start-up to 'Training on' {start_up:.1f}s, final passes "
                  f"{final:.2f}s | forward passes alone: {cores} threads {many:.2f}s, 1 thread {one:.2f}s "
                  f"(ratio {many / max(one, 1e-9):.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
