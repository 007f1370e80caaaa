"""The peer detector of the quality benchmark: TSB-AD's LSTMAD, in its own virtual environment.

TSB-AD (PyPI `TSB-AD`) pins numpy<2 and an old torch, so it cannot share the project's
environment. `ensure_venv()` builds `bench-out/.venv-tsbad` with TSB-AD installed
without its dependencies plus only what `TSB_AD.models.LSTMAD` imports (torch==2.13.0
CPU, numpy<2, tqdm, torchinfo): the full dependency set would pull transformers and a
multi-GB CUDA torch. `run_peer()` runs this file inside that environment on one series.

Run inside the venv (what `run_peer` does):
    python tsb_ad_peer.py SERIES_TXT TRAIN_END SEED OUT_NPY
It trains LSTMAD as TSB-AD's own benchmark wrapper does (window 100, prediction length 1,
lr 8e-4, batch 128, its early stopping with patience 3) on rows [0, TRAIN_END) and writes
the score of every row [TRAIN_END, N) (squared one-step error, higher = more anomalous).
The input is z-normalised here with the training rows' mean and standard deviation,
because TSB-AD 1.5's ForecastDataset ignores its own normalisation for univariate data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

WINDOW = 100
LR = 8e-4
VENV_PACKAGES = ("torch==2.13.0", "numpy<2", "tqdm", "torchinfo")


class PeerUnavailable(Exception):
    """The peer's environment could not be built; the benchmark goes on without it."""


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path) -> Path:
    """The peer's python, building the environment on first use (about a minute)."""
    python = venv_python(venv)
    probe = [str(python), "-c", "import numpy, TSB_AD.models.LSTMAD"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "TSB-AD==1.5"],
        [str(python), "-m", "pip", "install", "-q", *VENV_PACKAGES],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise PeerUnavailable(f"`{' '.join(step)}` failed: {done.stderr.strip()[-500:]}")
    done = subprocess.run(probe, capture_output=True, text=True)
    if done.returncode != 0:
        raise PeerUnavailable(f"TSB-AD installed but LSTMAD does not import: {done.stderr.strip()[-500:]}")
    return python


def run_peer(python: Path, series_file: Path, train_end: int, seed: int, out: Path) -> tuple[Path, float]:
    """Train and score one series in the peer's environment; (scores file, wall seconds)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TQDM_DISABLE="1")
    started = time.monotonic()
    done = subprocess.run([str(python), __file__, str(series_file), str(train_end), str(seed), str(out)],
                          capture_output=True, text=True, env=env)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"TSB-AD LSTMAD failed on {series_file.name}: {done.stderr.strip()[-800:]}")
    return out, seconds


def _main(series_file: str, train_end_text: str, seed_text: str, out: str) -> None:
    import numpy as np
    import torch
    from TSB_AD.models.LSTMAD import LSTMAD

    torch.set_num_threads(1)
    torch.manual_seed(int(seed_text))
    np.random.seed(int(seed_text))
    values = np.loadtxt(series_file, dtype=np.float64).reshape(-1, 1)
    train_end = int(train_end_text)
    mean, std = values[:train_end].mean(axis=0), values[:train_end].std(axis=0)
    scaled = (values - mean) / np.where(std == 0, 1.0, std)
    started = time.monotonic()
    detector = LSTMAD(window_size=WINDOW, pred_len=1, lr=LR, feats=1, batch_size=128)
    detector.fit(scaled[:train_end])
    fitted = time.monotonic()
    # The first WINDOW rows of the request are warm-up, so every test row gets its own score.
    scores = detector.decision_function(scaled[train_end - WINDOW:])[WINDOW:]
    np.save(out, scores.astype(np.float64))
    print(json.dumps({"fit_s": fitted - started, "score_s": time.monotonic() - fitted}))


if __name__ == "__main__":
    _main(*sys.argv[1:5])
