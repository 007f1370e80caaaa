"""Plots of the ucr-dev series that LSTM-AD missed in a bench_quality.py run.

For each missed series (worst first: lowest AUC-PR), one PNG with the test part of
the series (labelled anomaly shaded, the +-100-row tolerance outlined, our most
anomalous row marked) above our log-likelihood (and TSB-AD LSTMAD's score when it ran at that
seed). One plot per missed series and seed.

    .venv/bin/python scripts/bench_quality.py --work bench-out/work --out bench-out/quality.csv
    .venv/bin/python scripts/plot_misses.py bench-out/quality.csv bench-out/work --worst 4
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
UCR = REPO.parent / "shared" / "data" / "ucr-dev"


def series_file(name: str) -> Path:
    number = name.split("_", 1)[0]
    found = sorted(UCR.glob(f"{number}_UCR_Anomaly_*.txt"))
    if not found:
        raise SystemExit(f"no ucr-dev file for {name} in {UCR}")
    return found[0]


def plot(row: dict[str, str], work: Path, out: Path) -> Path:
    name, train_end = row["series"], int(row["train_end"])
    start, end = (int(v) for v in row["anomaly"].split("-"))
    values = np.loadtxt(series_file(name))
    job = work / name / f"seed-{row['seed']}"  # bench_quality.py's layout: one folder per series and seed
    log_likelihood = np.load(job / "log_likelihood.npy")
    rows = np.arange(train_end, len(values))
    peer_file = job / "lstmad_scores.npy"
    panels = 3 if peer_file.exists() else 2
    fig, axes = plt.subplots(panels, 1, figsize=(14, 2.6 * panels), sharex=True)
    axes[0].plot(rows, values[train_end:], lw=0.6, color="black")
    axes[0].set_title(f"{name} seed {row['seed']}: missed (our lowest log-likelihood at row {row['ours_row']}, "
                      f"anomaly {start}-{end}, AUC-PR {float(row['ours_aucpr']):.3f})", fontsize=10)
    axes[1].plot(rows, log_likelihood, lw=0.6, color="tab:blue")
    axes[1].set_ylabel("our log-likelihood")
    if panels == 3:
        axes[2].plot(rows, np.load(peer_file), lw=0.6, color="tab:green")
        axes[2].set_ylabel("LSTMAD sq. error")
    for ax in axes:
        ax.axvspan(start, end, color="red", alpha=0.3, label="labelled anomaly")
        ax.axvspan(start - 100, end + 100, color="red", alpha=0.08)
        ax.axvline(int(row["ours_row"]), color="tab:blue", ls="--", lw=1, label="our most anomalous row")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("row")
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"miss_{name}_seed{row['seed']}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", type=Path, help="per-series CSV written by bench_quality.py --out")
    parser.add_argument("work", type=Path, help="the --work folder of that run")
    parser.add_argument("--worst", type=int, default=4, help="how many misses to plot")
    parser.add_argument("--out", type=Path, default=REPO / "bench-out", help="folder for the PNGs")
    args = parser.parse_args(argv)
    with args.csv.open() as f:
        misses = [r for r in csv.DictReader(f) if r["ours_hit"] == "0" and r["series"][:1].isdigit()]
    misses.sort(key=lambda r: float(r["ours_aucpr"]))
    for row in misses[:args.worst]:
        print(plot(row, args.work, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
