"""Stop-to-exit time of the real `train` on large training sets: how long after SIGTERM the model is written.

SageMaker sends SIGTERM on StopTrainingJob, at MaxRuntimeInSeconds and on a spot interruption, and kills the
container 120 s later; whatever is not in /opt/ml/model by then is lost. `train` stops after the current
mini-batch and fits the error model; this script measures the whole stop: from the signal to the process's
exit, with the model written.

Each case lays out a job folder like /opt/ml (SAGEMAKER_BASE_DIR) with one generated training file (a noisy
sine of period 100 per column, each column phase-shifted; cached in --data), runs `train`, and sends SIGTERM
as soon as the log says epoch 1 is done (a job stopped before its first epoch completes saves nothing: there
are no weights yet), that is, early in epoch 2. `sequence-stride` 1000 keeps the epochs short; it changes
what the LSTM is fitted on, not the work after the stop (error vectors of every fitting and calibration row,
the error model's fit: that is what the stop sample bounds, lstm_ad/stop_sample.py).

    .venv/bin/python scripts/bench_stop.py                      # all cases, this checkout's code
    .venv/bin/python scripts/bench_stop.py --code /tmp/before/container --cases 1   # another checkout's lstm_ad

--code runs `train` from another checkout's `container/` folder (put first on PYTHONPATH), e.g. a worktree of
the commit before the stop sample: that is how the "before" figures in docs/benchmarks.md were taken.
--scale multiplies every case's rows (tests/test_bench_scripts.py runs it tiny).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_ad.sagemaker.paths import Paths, write_training_config

TRAIN = Path(sys.executable).with_name("train")
COMMON = {"sequence-stride": "1000", "epochs": "50"}
CASES: dict[str, tuple[int, int, dict[str, str]]] = {
    "5M x 1, defaults": (5_000_000, 1, {}),
    "5M x 1, error-centres 10000": (5_000_000, 1, {"error-centres": "10000"}),
    "2M x 8, error-centres 10000": (2_000_000, 8, {"error-centres": "10000"}),
}
EPOCH_DONE = re.compile(r"epoch 1/\d+ done")
FINAL = re.compile(r"Calibration and final metrics done in ([0-9.]+)s")
SAMPLE = re.compile(r"fitted on a sample")


@dataclass
class Outcome:
    case: str
    exit_code: int
    stop_to_exit_s: float
    final_pass_s: float
    sample_line: str
    model_written: bool
    load_before: float
    load_after: float


def series_file(folder: Path, rows: int, columns: int) -> Path:
    """The training file of `rows` x `columns` (written once, then reused)."""
    path = folder / f"sine-{rows}x{columns}.csv"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        partial = path.with_suffix(".partial")
        with partial.open("w") as out:
            for start in range(0, rows, 500_000):
                t = np.arange(start, min(rows, start + 500_000))[:, None]
                values = np.sin(2 * np.pi * t / 100 + 0.7 * np.arange(columns)[None, :])
                np.savetxt(out, values + 0.05 * rng.standard_normal(values.shape), delimiter=",", fmt="%.4f")
        partial.rename(path)
    return path


def run_case(name: str, data: Path, work: Path, code: Path | None, timeout: float, scale: float = 1.0) -> Outcome:
    rows, columns, extra = CASES[name]
    rows = max(int(rows * scale), 5000)
    base = work / re.sub(r"[^a-z0-9]+", "-", name.lower())
    paths = Paths(base)
    write_training_config(paths, ["training"], {**COMMON, **extra})
    paths.channel("training").mkdir(parents=True, exist_ok=True)
    link = paths.channel("training") / "series.csv"
    link.unlink(missing_ok=True)
    link.symlink_to(series_file(data, rows, columns))
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "PYTHONUNBUFFERED": "1"}
    command = [str(TRAIN)]
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        command = [sys.executable, "-c", "from lstm_ad.sagemaker.cli import train; train()"]
    load_before = os.getloadavg()[0]
    signalled = None
    log = []
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            if signalled is None and EPOCH_DONE.search(line):
                process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
        code_ = process.wait(timeout=timeout)
    ended = time.monotonic()
    text = "".join(log)
    if signalled is None:
        raise SystemExit(f"{name}: `train` ended ({code_}) before epoch 1 was done:\n{text[-3000:]}")
    final = FINAL.search(text)
    sample = next((line.split(": ", 1)[-1].strip() for line in log if SAMPLE.search(line)), "")
    meta = base / "model" / "model.json"
    written = meta.is_file() and json.loads(meta.read_text())["summary"]["interrupted"] is True
    return Outcome(name, code_, ended - signalled, float(final[1]) if final else float("nan"), sample, written,
                   load_before, os.getloadavg()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="*", type=int, help="case numbers (1-based) to run; default all: "
                        + "; ".join(f"{i}: {n}" for i, n in enumerate(CASES, 1)))
    parser.add_argument("--code", type=Path, help="a checkout's container/ folder to run `train` from")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "lstm-ad-bench-stop",
                        help="folder of the generated training files (kept for the next run)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for `train` after the stop")
    parser.add_argument("--scale", type=float, default=1.0, help="rows of each case times this (tests: tiny)")
    args = parser.parse_args(argv)
    names = [list(CASES)[i - 1] for i in args.cases] if args.cases else list(CASES)
    print(f"code: {args.code or 'this checkout'}; {os.cpu_count()} cores; hyperparameters {COMMON} plus the case's")
    print("| case | exit | stop to exit (s) | final pass (s) | model written | load avg before/after | log |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-stop-") as work:
        for name in names:
            o = run_case(name, args.data, Path(work), args.code, args.timeout, args.scale)
            print(f"| {o.case} | {o.exit_code} | {o.stop_to_exit_s:.1f} | {o.final_pass_s:.1f} | "
                  f"{'yes' if o.model_written else 'NO'} | {o.load_before:.1f}/{o.load_after:.1f} | "
                  f"{o.sample_line or '(no sample)'} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
