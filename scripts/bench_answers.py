"""Beyond the score: quality of the stored alarm threshold and of the per-column attribution.

- smd-dev (machine-1-2, 38 columns): train on train/ with the product defaults (the real `train`
  entrypoint, as scripts/bench_quality.py does), score test/ (warm-up from the tail of train/) with
  `Predictor.score(..., alarm=True, attribution=True)`.
  * Alarm: point-wise precision, recall and F1 of the stored threshold against test_label/, beside the
    F1 of the best threshold chosen on the labels (an upper bound no deployment has), and, for the
    choice of the default, the same figures at other alarm-fraction values (the threshold rule applied
    to the calibration rows' scores, recomputed here exactly as training does).
  * Attribution: HitRate@100 % and @150 % against interpretation_label/ (the papers' definition,
    ../shared/data/README.md), averaged over the labelled anomalous rows that are scored; beside the
    baseline "largest absolute standardised one-step error" (|e_t,j at horizon 1 - mean| / its standard
    deviation in the Gaussian) and random ranking.
  * With --gaps F: the same test series with a fraction F of its cells emptied at random (seed 0) is
    scored too (gaps read as the network's prediction, marginal scores): alarm P/R/F1, HitRate and the
    scoring time, beside the complete series'.
- ucr-dev (one column): per series, train on [0, trainEnd) with the defaults, score [trainEnd, N); the
  stored threshold's alarms summed over the series: point-wise TP, FP, FN -> precision, recall, F1; and
  the series where an alarm falls within [anomStart - 100, anomEnd + 100] ("found").
- Per alarm-fraction (the rule of lstm_ad/scoring/threshold.py on each model's calibration scores), a last
  table: the false-alarm rate on new normal rows (UCR: median over the series of the share of test rows
  more than 100 rows from the anomaly that alarm; smd-dev: the share of its label-0 test rows), beside the
  UCR series whose anomaly an alarm found; for smd-dev also where in the test the false alarms fall (per tenth)
  and quantiles of the calibration rows' scores beside those of the label-0 test rows (drift shows as a shift),
  and the false-alarm rate and recall with the threshold rule moved further down (threshold.py's `shift`).

    .venv/bin/python scripts/bench_answers.py [--series 0 1 ...] [--no-smd] [--no-ucr]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lstm_ad.predictor import Predictor
from lstm_ad.scoring.threshold import alarm_threshold
from lstm_ad.split import split_point
from lstm_ad.training import part_errors

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import DATA, UCR_MARGIN, best_f1, overrides, train_job, ucr_series  # noqa: E402

logger = logging.getLogger("bench_answers")
FRACTIONS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02)


def prf(alarm: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    tp = int(np.sum((alarm == 1) & (labels == 1)))
    fp = int(np.sum((alarm == 1) & (labels == 0)))
    fn = int(np.sum((alarm != 1) & (labels == 1)))
    return counts_prf(tp, fp, fn)


def counts_prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(f1, 4)}


def calibration_scores(predictor: Predictor, train: np.ndarray) -> np.ndarray:
    """The calibration rows' scores as training computed them (last calibration-fraction, warmed up): error
    vectors on one thread as training's (so bit for bit the centres' values), each row scored without its own
    vector among the centres."""
    c, hp = predictor.context_length, predictor.hyperparameters
    cut = split_point(len(train), hp.calibration_fraction)
    part = predictor.scaler.transform(train[max(0, cut - c):])
    errors = part_errors(predictor.network, [part], hp, predictor.chunk_length)[0]
    own = np.full(len(errors), -1)
    centres = predictor.error_model.centres
    if centres is not None:
        index = {centre.tobytes(): i for i, centre in enumerate(centres)}
        own = np.array([index.get(e.astype(np.float32).tobytes(), -1) for e in errors])
    return predictor.error_model.score(errors, part, exclude=own)


def read_interpretation(path: Path) -> list[tuple[int, int, list[int]]]:
    """`start-end:c1,c2,...` -> (start, end, 0-based columns); rows [start, end) as in test_label."""
    segments = []
    for line in path.read_text().split():
        span, columns = line.split(":")
        start, end = (int(v) for v in span.split("-"))
        segments.append((start, end, [int(c) - 1 for c in columns.split(",")]))
    return segments


def hit_rate(ranking: np.ndarray, segments: list[tuple[int, int, list[int]]], percent: int) -> float:
    """Mean over labelled rows of |top floor(P% |G|) columns ∩ G| / |G|; rows without a ranking are skipped."""
    rates = []
    for start, end, truth in segments:
        k = int(np.floor(percent / 100 * len(truth)))
        for row in range(start, min(end, len(ranking))):
            if not np.isfinite(ranking[row]).all():
                continue
            top = np.argsort(-ranking[row], kind="stable")[:k]
            rates.append(len(set(top.tolist()) & set(truth)) / len(truth))
    return float(np.mean(rates)) if rates else float("nan")


def run_smd(hyperparameters: dict[str, str], work: Path, threads: int, gaps: float = 0.0) -> dict[str, object]:
    folder = DATA / "smd-dev"
    train = np.loadtxt(folder / "train" / "machine-1-2.txt", delimiter=",")
    test = np.loadtxt(folder / "test" / "machine-1-2.txt", delimiter=",")
    labels = np.loadtxt(folder / "test_label" / "machine-1-2.txt")
    segments = read_interpretation(folder / "interpretation_label" / "machine-1-2.txt")
    predictor, seconds = train_job(work / "smd", train, hyperparameters, threads)
    c = predictor.context_length
    request = np.vstack([train[-c:], test])
    started = time.monotonic()
    result = predictor.score(request, alarm=True, attribution=True)
    score_s = time.monotonic() - started
    score, alarm, attribution = result.score[c:], result.alarm[c:], result.attribution[c:]  # type: ignore[index]
    # Baseline: |one-step error - its mean| / its standard deviation, per column (Gaussian's marginals).
    errors = predictor.forecast_errors(request).errors[c:].astype(np.float64)
    d = predictor.columns
    g = predictor.error_model.gaussian
    baseline = np.abs(errors[:, :d] - g.mean[:d]) / np.sqrt(np.diag(g.cov)[:d])
    random_rank = np.random.default_rng(0).random(attribution.shape)
    anomaly = np.nan_to_num(-score, nan=-np.inf)
    calibration = calibration_scores(predictor, train)
    stored = alarm_threshold(calibration, predictor.hyperparameters.alarm_fraction)
    trained = predictor.error_model.alarm_threshold
    if not np.isclose(stored, trained, rtol=1e-6):  # the sweep below starts from training's rule
        raise SystemExit(f"calibration scores differ from training's: threshold {stored}, stored {trained}")
    sweep = {}
    for fraction in FRACTIONS:
        flags = (score < alarm_threshold(calibration, fraction)).astype(float)
        sweep[str(fraction)] = {**prf(flags, labels), "false_alarm_rate": round(float(flags[labels == 0].mean()), 6),
                                "false_alarms_per_tenth_of_test": np.bincount(
                                    np.flatnonzero(flags * (labels == 0)) * 10 // len(labels), minlength=10).tolist()}
    # What it would take to meet alarm-fraction on these normal rows: the rule moved further down (its shift),
    # and what recall that costs.
    shifts = {}
    for fraction in (0.001, 0.01):
        for shift in (0.5, 1.0, 2.0, 3.0):
            flags = score < alarm_threshold(calibration, fraction, shift)
            shifts[f"{fraction} shift {shift}"] = {"false_alarm_rate": round(float(flags[labels == 0].mean()), 6),
                                                   "recall": round(float(flags[labels == 1].mean()), 4)}
    # Whether new normal rows score like the calibration rows the threshold is read from (drift shows as a shift).
    quantiles = {str(q): {"calibration": round(float(np.nanquantile(calibration, q)), 1),
                          "test_label_0": round(float(np.nanquantile(score[labels == 0], q)), 1)}
                 for q in (0.5, 0.1, 0.01)}
    # Attribution check: the shares sum to 2 (best - L) on every scored row, L the row's log-likelihood under the
    # one Gaussian N(μ, Σ) (the paper's; the score itself is the error centres' and the score window's).
    own = g.log_likelihood(errors)
    gap = np.nanmax(np.abs(np.nansum(attribution, axis=1) - 2 * (g.best_log_likelihood - own))
                    / np.maximum(1.0, np.abs(own)))
    gappy: dict[str, object] = {}
    if gaps:
        holes = request.copy()
        holes[c:][np.random.default_rng(0).random(test.shape) < gaps] = np.nan
        started = time.monotonic()
        with_gaps = predictor.score(holes, alarm=True, attribution=True)
        gappy = {"fraction_of_cells": gaps, "score_s": round(time.monotonic() - started, 1),
                 "rows_without_score": int(np.isnan(with_gaps.score[c:]).sum()),
                 "alarm_stored": prf(with_gaps.alarm[c:], labels),  # type: ignore[index]
                 "attribution@100": round(hit_rate(with_gaps.attribution[c:], segments, 100), 4),  # type: ignore[index]
                 "attribution@150": round(hit_rate(with_gaps.attribution[c:], segments, 150), 4)}  # type: ignore[index]
    return {
        "train_s": round(seconds, 1), "epochs": predictor.summary.get("epochs_run"), "score_s": round(score_s, 1),
        "gaps": gappy,
        "alarm_fraction": predictor.hyperparameters.alarm_fraction,
        "stored_threshold": trained,
        "recomputed_threshold": alarm_threshold(calibration, predictor.hyperparameters.alarm_fraction),
        "alarm_stored": prf(alarm, labels),
        "best_f1_on_labels": round(best_f1(anomaly, labels), 4),
        "alarm_fraction_sweep": sweep,
        "score_quantiles": quantiles,
        "threshold_shift_sweep": shifts,
        "hitrate": {
            "attribution@100": round(hit_rate(attribution, segments, 100), 4),
            "attribution@150": round(hit_rate(attribution, segments, 150), 4),
            "baseline@100": round(hit_rate(baseline, segments, 100), 4),
            "baseline@150": round(hit_rate(baseline, segments, 150), 4),
            "random@100": round(hit_rate(random_rank, segments, 100), 4),
            "random@150": round(hit_rate(random_rank, segments, 150), 4),
            "labelled_rows": sum(e - s for s, e, _ in segments),
        },
        "attribution_sum_max_relative_gap": float(gap),
    }


def run_ucr(names: list[str] | None, hyperparameters: dict[str, str], work: Path, threads: int
            ) -> dict[str, object]:
    per_series, totals = [], {"tp": 0, "fp": 0, "fn": 0}
    sweep_totals = {str(f): {"tp": 0, "fp": 0, "fn": 0} for f in FRACTIONS}
    false_alarm_rates: dict[str, list[float]] = {str(f): [] for f in FRACTIONS}
    found_at = dict.fromkeys(map(str, FRACTIONS), 0)
    found = 0
    items = ucr_series(names)
    for path, train_end, start, end in items:
        values = np.loadtxt(path, dtype=np.float64).reshape(-1, 1)
        name = path.name.split("_UCR_Anomaly_")[0]
        predictor, seconds = train_job(work / name, values[:train_end], hyperparameters, threads)
        c = predictor.context_length
        result = predictor.score(values[train_end - c:], alarm=True)
        score, alarm = result.score[c:], result.alarm[c:]  # type: ignore[index]
        labels = np.zeros(len(values) - train_end)
        labels[start - train_end:end - train_end] = 1
        counts = prf(alarm, labels)
        for key in totals:
            totals[key] += int(counts[key])
        calibration = calibration_scores(predictor, values[:train_end])
        rows = train_end + np.arange(len(score))
        near = (rows >= start - UCR_MARGIN) & (rows <= end + UCR_MARGIN)  # the anomaly and 100 rows either side
        for fraction in FRACTIONS:
            flags = (score < alarm_threshold(calibration, fraction)).astype(float)
            swept = prf(flags, labels)
            for key in ("tp", "fp", "fn"):
                sweep_totals[str(fraction)][key] += int(swept[key])
            false_alarm_rates[str(fraction)].append(float(flags[~near & np.isfinite(score)].mean()))
            found_at[str(fraction)] += bool(flags[near].any())
        rows = train_end + np.flatnonzero(alarm == 1)
        hit = bool(np.any((rows >= start - UCR_MARGIN) & (rows <= end + UCR_MARGIN)))
        found += hit
        per_series.append({"series": name, "alarms": int(np.nansum(alarm)), "tp": counts["tp"], "found": hit,
                           "train_s": round(seconds, 1)})
        logger.info("%s: %d alarms, %d in the anomaly, found=%s (%.0fs)", name, int(np.nansum(alarm)),
                    counts["tp"], hit, seconds)
    return {"series": len(items), "found": found, "summed": counts_prf(**totals),
            "alarm_fraction_sweep": {f: {**counts_prf(**t), "found": found_at[f],
                                         "median_false_alarm_rate": round(float(np.median(false_alarm_rates[f])), 6),
                                         "mean_false_alarm_rate": round(float(np.mean(false_alarm_rates[f])), 6)}
                                     for f, t in sweep_totals.items()},
            "per_series": per_series}


def print_alarm_rates(results: dict[str, object]) -> None:
    """Per alarm-fraction: the false-alarm rate on new normal rows (UCR: the median over series of the rows more
    than 100 from the anomaly; smd-dev: its label-0 rows) and the anomalies an alarm found."""
    ucr, smd = results.get("ucr"), results.get("smd")
    print("alarm-fraction | UCR median false-alarm rate (x fraction) | UCR series found | smd-dev false-alarm rate")
    for fraction in map(str, FRACTIONS):
        cells = [fraction, "", "", ""]
        if isinstance(ucr, dict):
            swept = ucr["alarm_fraction_sweep"][fraction]
            rate = swept["median_false_alarm_rate"]
            cells[1:3] = [f"{rate:.4%} ({rate / float(fraction):.1f}x)", f"{swept['found']}/{ucr['series']}"]
        if isinstance(smd, dict):
            rate = smd["alarm_fraction_sweep"][fraction]["false_alarm_rate"]
            cells[3] = f"{rate:.4%} ({rate / float(fraction):.1f}x)"
        print(" | ".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", nargs="*", help="ucr-dev file name parts (default: all 40)")
    parser.add_argument("--no-smd", action="store_true")
    parser.add_argument("--no-ucr", action="store_true")
    parser.add_argument("--work", type=Path, help="job folders (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--hyperparameters", nargs="*", default=[], metavar="NAME=VALUE")
    parser.add_argument("--gaps", type=float, default=0.0, help="also score smd-dev with this fraction of cells empty")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not DATA.is_dir():
        print(f"{DATA} is absent: nothing to measure.")
        return 0
    hyperparameters = overrides(args.hyperparameters)
    threads = os.cpu_count() or 1
    started = time.monotonic()
    results: dict[str, object] = {"hyperparameters": hyperparameters}
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        if not args.no_smd:
            results["smd"] = smd = run_smd(hyperparameters, work, threads, args.gaps)
            print("smd:", json.dumps(smd))
        if not args.no_ucr:
            results["ucr"] = ucr = run_ucr(args.series, hyperparameters, work, threads)
            print("ucr:", json.dumps({k: v for k, v in ucr.items() if k != "per_series"}))
    print_alarm_rates(results)
    print(f"done in {time.monotonic() - started:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
