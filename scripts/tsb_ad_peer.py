"""The peer detectors of the quality benchmark: two of TSB-AD 1.5's detectors and two matrix-profile
discords (stumpy), in their own venv.

TSB-AD (PyPI `TSB-AD`, github.com/TheDatumOrg/TSB-AD) pins numpy<2 and an old torch, so it cannot
share the project's environment. `ensure_venv()` builds it (in `peer_venv()`: `bench-out/.venv-tsbad`,
or the folder named by LSTM_AD_PEER_VENV, which CI keeps in /var/cache/lstm-ad) with TSB-AD==1.5
installed without its dependencies plus only what the peers import (VENV_PACKAGES: the local
CPU wheel of torch, numpy<2, scikit-learn<1.6, scipy, statsmodels, pandas, hurst, tqdm, torchinfo,
stumpy 1.14.1 with the numba it pulls): the full dependency set would pull transformers and a
multi-GB CUDA torch. `run_peer()` runs this file inside that environment on one series; it writes the
score of every row [TRAIN_END, N), higher = more anomalous, and the caller judges every peer exactly
as it judges ours (UCR accuracy: the row of the highest score within [anomStart - 100, anomEnd + 100];
AUC-PR against the labelled rows).

    python tsb_ad_peer.py {lstmad|subpca} SERIES_TXT TRAIN_END SEED OUT_NPY [NORMALISATION]
    python tsb_ad_peer.py {mp-ab|mp-self} SERIES_TXT TRAIN_END SEED OUT_NPY none WINDOW
    python tsb_ad_peer.py build      (builds or checks the environment; prints its python)

NORMALISATION (lstmad only): `upstream` (the default: what TSB_AD/utils/dataset.py does on GitHub
since 1.5 was released, and what 1.5 intends: every dataset LSTMAD builds, i.e. the training split,
the validation split and the scored series, z-normalised with its own mean and std) or `none` (TSB-AD
1.5 exactly as released, whose ForecastDataset drops its normalisation: raw values; see below).

What TSB-AD's own univariate benchmark does (benchmark_exp/Run_Detector_U.py and TSB_AD/main.py
upstream; TSB_AD/model_wrapper.py and TSB_AD/HP_list.py of the installed 1.5 package):
- reads a TSB-AD-U file (UCR series among them, values as in the archive), takes the train index
  from the file name and sets data_train = data[:train_index]; no normalisation in the script;
- semi-supervised detectors (LSTMAD among them) are fitted on data_train and score the WHOLE series
  (`run_Semisupervise_AD(name, data_train, data)`); unsupervised ones (Sub_PCA among them) are
  fitted and scored on the whole series (`run_Unsupervise_AD(name, data)`);
- hyperparameters: `Optimal_Uni_algo_HP_dict` of TSB_AD/HP_list.py, 1.5: LSTMAD window_size 100,
  lr 0.0008; Sub_PCA periodicity 1, n_components None. (The GitHub HP_list.py has carried other
  values in some versions, e.g. LSTMAD window 50; we use the released package's.)
- one global seed 2024 for everything; metrics (VUS-PR etc.) over ALL rows, training rows included,
  after min-max scaling of the score (which changes no ranking).

lstmad: TSB-AD's `run_LSTMAD` itself (TSB_AD/model_wrapper.py): `LSTMAD(window_size=100,
pred_len=1, lr=0.0008, batch_size=128)` (2 LSTM layers of 20; at most 49 epochs, as its loop stops
at epochs - 1; its own early stopping with patience 3 on the last 20 % of the training rows; StepLR
0.75 every 5 epochs; the model of the last epoch is kept, not the best). fit(rows [0, TRAIN_END)),
decision_function(all N rows): the score of row t is the squared error of predicting row t from
rows [t-100, t); TSB-AD fills the first 100 rows, which have no full window, with the score of row
100 — those are training rows here, so no scored row is filled. Normalisation: TSB-AD's
ForecastDataset takes `normalize=True`, but 1.5 builds the windows from the raw
argument, not from the normalised copy (TSB_AD/utils/dataset.py), so the network sees raw values
(TSB-AD-U's files hold raw values too, e.g.
Datasets/TSB-AD-U/001_NAB_id_1_Facility_tr_1007_1st_2014.csv upstream, around 45). On a series far
from zero the small network does not reach the level at lr 0.0008 before it stops, so its score is
close to (value - constant)^2 and hardly depends on the seed. Later GitHub versions of dataset.py
(the 1.5 class commented out) normalise the training split, the validation split and the scored
series each with its OWN mean and std. We run that by default (NORMALISATION `upstream`: the 1.5
dataset class given the z-normalised data, nothing else changed), so that the peer is the detector
TSB-AD means, not a released bug; `none` reproduces 1.5 exactly. Until 2026-12 this script
z-normalised with the training rows' statistics and called the LSTMAD class itself, which is
neither. Seeded: torch, numpy and random get SEED (TSB-AD: 2024).

subpca: TSB-AD's Sub-PCA, first on TSB-AD-U's leaderboard (VUS-PR 0.42; LSTMAD 0.33) and
deterministic. As `run_Sub_PCA`: window = find_length_rank(rank=periodicity 1), the period from
the autocorrelation (125 when none is found); `PCA(slidingWindow=window, n_components=None)` on
the standardised sliding windows; score of a window = its weighted distance to the principal
axes, given to the window's centre row (TSB-AD pads the first ceil((w-1)/2) and last (w-1)//2
rows with the nearest score). What differs: TSB-AD fits Sub_PCA on the whole series, test part
and anomaly included (it is in its unsupervised pool); here it is fitted on rows [0, TRAIN_END)
only (period from those rows too) and decision_function scores all N rows, so it learns from
the same rows as ours and the LSTMAD peer. Not seeded (full SVD): run once per series.

Both TSB-AD peers: rows [TRAIN_END, N) are kept, the rows our detector is judged on; what still
differs from TSB-AD's benchmark is the metric (UCR accuracy and AUC-PR on those rows instead of VUS-PR
on all rows) and, for subpca, the fitted rows. One torch/BLAS thread each.

mp-ab and mp-self: matrix-profile discords, no training, deterministic (SEED is ignored; run once per
series). WINDOW (the subsequence length m) is given by the caller: bench_quality.py's `peer_window`
applies our discord term's rule (lstm_ad/scoring/discord.py: `dominant_period` of `lag_products`, with
`discord-window` 0) to the training part [0, TRAIN_END) z-normalised, else the default context-length
(100) when it has no period; this venv does not have our package. Distances are stumpy's
z-normalised Euclidean distances (`stumpy.stump`, stumpy 1.14.1; a constant subsequence is at 0 from
another constant one and sqrt(m) from any other), float64, NUMBA_NUM_THREADS=1.
- mp-ab: an AB-join, `stumpy.stump(T_A=test, m, T_B=train, ignore_trivial=False)` with test = rows
  [TRAIN_END, N) and train = rows [0, TRAIN_END): each subsequence lying wholly in the test part gets
  its distance to the nearest subsequence lying wholly in the training part (no exclusion zone: the
  two never overlap). A pattern that is new to the test part scores high even if it recurs there.
- mp-self: a self-join of the whole series, `stumpy.stump(T_A=all N rows, m)`, exclusion zone
  stumpy's default (neighbours within ceil(m / 4) starts of each other are trivial matches, skipped):
  each subsequence's distance to its nearest non-trivial neighbour anywhere in the series, test part
  included, so a pattern that recurs in the test part counts as normal.
Rows: the profile value of the subsequence CENTRED on a row (starting (m - 1) // 2 rows before it,
where our discord term puts its subsequence by default, `score-window-position` centred) is that row's
score. Rows [TRAIN_END, N) without such a subsequence (the first (m - 1) // 2 test rows and the last
m // 2 for mp-ab; the last m // 2 for mp-self) get the lowest profile value, so that they never rank
first; so does a non-finite profile value. Cost: mp-ab compares (N - TRAIN_END - m + 1) x (TRAIN_END -
m + 1) pairs of subsequences, mp-self about (N - m + 1)^2 / 2, each about 150 million a second on one
thread here (1.5 min for a 200,000-row self-join); bench_quality.py skips a series above
--mp-max-pairs and names it. numba's compiled kernels are cached in the venv (stumpy/__pycache__):
the first run compiles (about 40 s), later ones start in about 3 s.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where a peer runs: `build` runs under any python3
    import numpy as np

PEERS = ("lstmad", "subpca", "mp-ab", "mp-self")
MATRIX_PROFILE_PEERS = ("mp-ab", "mp-self")  # need a window (WINDOW), import neither torch nor TSB-AD
NORMALISATIONS = ("upstream", "none")
SEEDED = {"lstmad": True, "subpca": False, "mp-ab": False, "mp-self": False}
# scikit-learn 1.6 and later reject TSB-AD's detector classes (no __sklearn_tags__).
VENV_PACKAGES = ("torch==2.13.0", "numpy<2", "tqdm", "torchinfo", "scikit-learn>=1.3.2,<1.6", "scipy",
                 "statsmodels", "pandas", "hurst", "stumpy==1.14.1")
PROBE = ("import numpy, sys; numpy.__version__ < '2' or sys.exit('numpy ' + numpy.__version__); "
         "import TSB_AD.model_wrapper, TSB_AD.models.LSTMAD; from TSB_AD.models.PCA import PCA; "
         "x = numpy.sin(numpy.arange(60.0)).reshape(-1, 1); PCA(slidingWindow=5).fit(x).decision_function(x); "
         "import stumpy")


class PeerUnavailable(Exception):
    """The peers' environment could not be built; the benchmark goes on without them."""


def peer_venv() -> Path:
    """Where the peers' environment lives: LSTM_AD_PEER_VENV, else bench-out/.venv-tsbad of this clone."""
    named = os.environ.get("LSTM_AD_PEER_VENV")
    return Path(named) if named else Path(__file__).resolve().parent.parent / "bench-out" / ".venv-tsbad"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path) -> Path:
    """The peers' python, building (or completing) the environment on first use (about a minute)."""
    python = venv_python(venv)
    probe = [str(python), "-c", PROBE]
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
        raise PeerUnavailable(f"TSB-AD installed in {venv} but its detectors do not import with numpy<2: "
                              f"{done.stderr.strip()[-500:]}")
    return python


def run_peer(python: Path, peer: str, series_file: Path, train_end: int, seed: int, out: Path,
             normalisation: str = "upstream", window: int = 0) -> tuple[Path, float]:
    """Fit and score one series in the peers' environment; (scores file, wall seconds). `window`: the
    subsequence length of the matrix-profile peers (required for them, ignored by the others)."""
    if peer not in PEERS:
        raise ValueError(f"unknown peer {peer!r}; known: {', '.join(PEERS)}")
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {normalisation!r}; known: {', '.join(NORMALISATIONS)}")
    if peer in MATRIX_PROFILE_PEERS and window < 3:
        raise ValueError(f"{peer} needs its subsequence length: window={window}, give at least 3")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               TQDM_DISABLE="1")
    started = time.monotonic()
    done = subprocess.run([str(python), __file__, peer, str(series_file), str(train_end), str(seed), str(out),
                           normalisation, str(window)], capture_output=True, text=True, env=env)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"peer {peer} failed on {series_file.name}: {done.stderr.strip()[-800:]}")
    return out, seconds


def matrix_profile_scores(peer: str, values: np.ndarray, train_end: int, window: int) -> np.ndarray:
    """mp-ab / mp-self (see the module doc): the score of every row [train_end, N), higher = more anomalous.

    A row's score is the matrix-profile value of the subsequence CENTRED on it (starting (window - 1) // 2
    rows before it, as ours places its discord subsequence by default); rows that have none get the lowest
    profile value, so that they never rank first."""
    import importlib

    import numpy as np
    import stumpy
    import stumpy.cache

    # numba's on-disk cache (stumpy/__pycache__ of the venv) for every stumpy kernel: the first run compiles
    # (about 40 s here), later ones load (under 1 s). What stumpy's own cache._enable() does, without its warning.
    for module, function in stumpy.cache.get_njit_funcs():
        getattr(importlib.import_module(f"stumpy.{module}"), function).enable_caching()
    series = np.asarray(values, dtype=np.float64).ravel()
    test, train = series[train_end:], series[:train_end]
    if window < 3 or len(test) < window or (peer == "mp-ab" and len(train) < window):
        raise SystemExit(f"{peer} needs a window of at least 3 rows and as many training and test rows as the "
                         f"window ({window}); the series has {len(train)} training and {len(test)} test rows")
    if peer == "mp-ab":  # each test subsequence against every training subsequence
        profile = stumpy.stump(test, m=window, T_B=train, ignore_trivial=False)[:, 0].astype(np.float64)
        first = train_end  # row where profile[0]'s subsequence starts
    elif peer == "mp-self":  # the whole series against itself, exclusion zone stumpy's default (window / 4)
        profile = stumpy.stump(series, m=window)[:, 0].astype(np.float64)
        first = 0
    else:
        raise SystemExit(f"unknown matrix-profile peer {peer!r}")
    finite = np.isfinite(profile)
    lowest = float(profile[finite].min()) if finite.any() else 0.0
    scores = np.full(len(series), lowest)
    centre = first + (window - 1) // 2  # the row of profile[0]
    scores[centre:centre + len(profile)] = np.where(finite, profile, lowest)
    return scores[train_end:]


def _main(peer: str, series_file: str, train_end_text: str, seed_text: str, out: str,
          normalisation: str = "upstream", window_text: str = "0") -> None:
    import numpy as np

    values = np.loadtxt(series_file, dtype=np.float64).reshape(-1, 1)
    train_end = int(train_end_text)
    started = time.monotonic()
    info: dict[str, object] = {"peer": peer}
    if peer in MATRIX_PROFILE_PEERS:
        window = int(window_text)
        scores = matrix_profile_scores(peer, values, train_end, window)
        np.save(out, scores)
        info.update(window=window, position="centred", seconds=time.monotonic() - started)
        print(json.dumps(info))
        return

    import torch
    from TSB_AD.HP_list import Optimal_Uni_algo_HP_dict

    torch.set_num_threads(1)
    seed = int(seed_text)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    if peer == "lstmad":
        import TSB_AD.models.LSTMAD
        from TSB_AD.model_wrapper import run_LSTMAD

        if normalisation == "upstream":
            released = TSB_AD.models.LSTMAD.ForecastDataset

            class OwnStatistics(released):  # type: ignore[misc,valid-type]
                def __init__(self, data: np.ndarray, window_size: int, pred_len: int) -> None:
                    std = data.std(axis=0)
                    super().__init__((data - data.mean(axis=0)) / np.where(std == 0, 1e-8, std), window_size, pred_len)

            TSB_AD.models.LSTMAD.ForecastDataset = OwnStatistics
        elif normalisation != "none":
            raise SystemExit(f"unknown normalisation {normalisation!r}; known: {', '.join(NORMALISATIONS)}")
        info["normalisation"] = normalisation

        hp = Optimal_Uni_algo_HP_dict["LSTMAD"]
        if train_end <= hp["window_size"]:
            raise SystemExit(f"lstmad needs more than {hp['window_size']} training rows, got {train_end}")
        scores = run_LSTMAD(values[:train_end], values, **hp)
    elif peer == "subpca":
        from TSB_AD.models.PCA import PCA
        from TSB_AD.utils.slidingWindows import find_length_rank

        hp = Optimal_Uni_algo_HP_dict["Sub_PCA"]
        window = int(find_length_rank(values[:train_end], rank=hp["periodicity"]))
        if train_end <= window:
            raise SystemExit(f"subpca needs more than its window ({window}) training rows, got {train_end}")
        detector = PCA(slidingWindow=window, n_components=hp["n_components"])
        detector.fit(values[:train_end])
        scores = detector.decision_function(values)
        info["window"] = window
    else:
        raise SystemExit(f"unknown peer {peer!r}; known: {', '.join(PEERS)}")
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if len(scores) != len(values):
        raise SystemExit(f"{peer} returned {len(scores)} scores for {len(values)} rows")
    np.save(out, scores[train_end:])
    info.update(hyperparameters=hp, seconds=time.monotonic() - started)
    print(json.dumps(info, default=str))


if __name__ == "__main__":
    if sys.argv[1:] == ["build"]:
        try:
            print(ensure_venv(peer_venv()))
        except PeerUnavailable as exc:
            raise SystemExit(f"tsb_ad_peer.py build: {exc}") from None
    elif len(sys.argv) in (6, 7, 8):
        _main(*sys.argv[1:8])
    else:
        raise SystemExit(__doc__)
