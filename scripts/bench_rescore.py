"""Re-score the models a `scripts/bench_quality.py --work DIR` run kept, without training again.

The LSTM does not depend on the scoring hyperparameters, so each model's error model is refitted or changed
offline and its test part scored again; per half (bench_quality's split) and seed it prints:

  * UCR accuracy of the models as trained (checked: the refit gives back the run's log_likelihood.npy), with
    `score-window-position` trailing (the error model refitted from the same calibration and fitting rows, as
    training does), and without the discord term (`discord-refs` 0: the one Gaussian and the score window of
    the same fit);
  * the alarm threshold rules at alarm-fraction 0.001 and 0.01 on the calibration rows' scores (recomputed as
    training does): the rule of lstm_ad/scoring/threshold.py at the shifts given (--shifts; the product's
    TAIL_SHIFT among them) and the empirical quantile (the rule before
    2026-12-03). For each: the median over runs of the false-alarm rate (the share of test rows more than 100
    rows from the labelled anomaly that alarm), its mean, and the runs with an alarm within 100 rows of it.

    .venv/bin/python scripts/bench_rescore.py WORK [--data ../shared/data/ucr-dev ../shared/data/ucr-extra]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import UCR_MARGIN, load_series, split_halves, ucr_files  # noqa: E402
from lstm_ad.predictor import Predictor  # noqa: E402
from lstm_ad.scoring import threshold  # noqa: E402
from lstm_ad.scoring.error_model import ErrorModel  # noqa: E402
from lstm_ad.split import split_point  # noqa: E402
from lstm_ad.training import part_errors  # noqa: E402

FRACTIONS = (0.001, 0.01)


def lowest_hit(scores: np.ndarray, train_end: int, start: int, end: int) -> int:
    row = train_end + int(np.argmin(np.nan_to_num(scores, nan=np.inf)))
    return int(start - UCR_MARGIN <= row <= end + UCR_MARGIN)


def rescore(job: Path, values: np.ndarray, train_end: int) -> dict[str, np.ndarray]:
    """Calibration and test scores of one kept model: as trained, trailing, without the discord term."""
    predictor = Predictor.load(job / "model")
    hp, c = predictor.hyperparameters, predictor.context_length
    train = values[:train_end]
    cut = split_point(len(train), hp.calibration_fraction)
    fitting_values = [predictor.scaler.transform(train[:cut])]
    calibration_values = [predictor.scaler.transform(train[max(0, cut - c):])]
    fitting = part_errors(predictor.network, fitting_values, hp, predictor.chunk_length)
    calibration = part_errors(predictor.network, calibration_values, hp, predictor.chunk_length)
    request = values[train_end - c:]
    found = {}
    for name, position in (("trained", hp.score_window_position), ("trailing", "trailing")):
        changed = dataclasses.replace(hp, score_window_position=position)
        model = ErrorModel.fit(calibration, fitting, changed, calibration[0].shape[1],
                               values=(calibration_values, fitting_values))
        scorer = dataclasses.replace(predictor, hyperparameters=changed, error_model=model)
        found[name] = scorer.score(request).score[c:]
        found[f"{name}_calibration"] = model.score(calibration[0], calibration_values[0])
    kept = job / "log_likelihood.npy"  # bench_quality's scores of the test part: the refit must give them back
    if kept.exists() and not np.allclose(found["trained"], np.load(kept), rtol=1e-9, atol=0, equal_nan=True):
        raise SystemExit(f"{job}: the refitted error model does not give back the run's scores: not the code "
                         "that trained it")
    without = dataclasses.replace(predictor, error_model=dataclasses.replace(predictor.error_model, discord=None))
    found["no_discord"] = without.score(request).score[c:]
    return found


def empirical(scores: np.ndarray, fraction: float) -> float:
    return float(np.quantile(scores[np.isfinite(scores)], fraction, method="lower"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path, help="the --work folder of a bench_quality.py run (kept models)")
    parser.add_argument("--data", type=Path, nargs="+",
                        default=[Path("../shared/data/ucr-dev"), Path("../shared/data/ucr-extra")])
    parser.add_argument("--shifts", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    args = parser.parse_args()
    torch.set_num_threads(1)
    series = {s.name: s for s in ucr_files(args.data)}
    half = split_halves(list(series.values()))
    rules = {"empirical quantile": empirical,
             **{f"tail, shift {s:g}": functools.partial(threshold.alarm_threshold, shift=s) for s in args.shifts}}
    runs = []
    for job in sorted(args.work.glob("*/seed-*/model")):
        s = series[job.parent.parent.name]
        values = load_series(s)
        found = rescore(job.parent, values, s.train_end)
        rows = s.train_end + np.arange(len(found["trained"]))
        near = (rows >= s.start - UCR_MARGIN) & (rows <= s.end + UCR_MARGIN)
        run = {"half": half[s.name], "seed": job.parent.name,
               **{k: lowest_hit(found[k], s.train_end, s.start, s.end) for k in ("trained", "trailing", "no_discord")}}
        for name, rule in rules.items():
            for fraction in FRACTIONS:
                flags = found["trained"] < rule(found["trained_calibration"], fraction)
                run[(name, fraction)] = (float(flags[~near & np.isfinite(found["trained"])].mean()),
                                         bool(flags[near].any()))
        runs.append(run)
        print(f"{s.name} {job.parent.name}: hit {run['trained']}, trailing {run['trailing']}, "
              f"without discord {run['no_discord']}", flush=True)
    for halves in ("A", "B", "AB"):
        chosen = [r for r in runs if r["half"] in halves]
        if not chosen:
            continue
        print(f"\nhalf {halves}: {len(chosen)} runs")
        for key in ("trained", "trailing", "no_discord"):
            seeds = sorted({r["seed"] for r in chosen})
            per_seed = {seed: [r[key] for r in chosen if r["seed"] == seed] for seed in seeds}
            print(f"  UCR accuracy {key:10s} " + "  ".join(f"{seed} {np.mean(v):.3f} ({sum(v)}/{len(v)})"
                                                          for seed, v in per_seed.items())
                  + f"  mean {np.mean([r[key] for r in chosen]):.3f}")
        for name in rules:
            for fraction in FRACTIONS:
                rates = [r[(name, fraction)][0] for r in chosen]
                found_count = sum(r[(name, fraction)][1] for r in chosen)
                print(f"  alarm-fraction {fraction:<6g} {name:22s} median false alarms {np.median(rates):.4%} "
                      f"({np.median(rates) / fraction:.1f}x), mean {np.mean(rates):.3%}, "
                      f"found {found_count}/{len(chosen)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
