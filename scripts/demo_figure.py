"""The README's picture of the demo: the test series, its normality score, the labelled anomalies and the
alarms, drawn from what `bash scripts/demo.sh` wrote.

    python scripts/demo_figure.py [--demo-dir demo] [--output docs/demo.png]

Alarms are the rows the optional `alarm` output flags: score below the threshold that training stored in
`model.json` (the same rule, `lstm_ad.scoring.threshold.alarms`). scripts/run_notebooks.sh makes the README's copy.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lstm_ad.scoring.threshold import alarms  # noqa: E402
from lstm_ad_local.demo_data import read_scores  # noqa: E402


def stored_threshold(model_archive: Path) -> float:
    with tarfile.open(model_archive) as archive:
        member = archive.extractfile("model.json")
        if member is None:
            sys.exit(f"{model_archive} has no model.json")
        threshold = json.load(member).get("alarm_threshold")
    if threshold is None:
        sys.exit(f"{model_archive} stores no alarm threshold: run scripts/demo.sh again")
    return float(threshold)


def shade(ax: plt.Axes, labels: np.ndarray) -> None:
    edges = np.diff(np.concatenate([[0], labels, [0]]))
    for number, (start, end) in enumerate(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)):
        ax.axvspan(start - 0.5, end - 0.5, color="tab:red", alpha=0.18, lw=0,
                   label="labelled anomaly" if number == 0 else None)


def draw(demo: Path, output: Path) -> str:
    values = np.loadtxt(demo / "data" / "test" / "test.csv", delimiter=",", ndmin=2)
    labels = np.loadtxt(demo / "data" / "test_labels.csv", dtype=int)
    scores = read_scores(demo / "predictions" / "test.csv.out")
    threshold = stored_threshold(demo / "model" / "model.tar.gz")
    scored = ~np.isnan(scores)
    flagged = np.zeros(len(scores), dtype=bool)
    flagged[scored] = alarms(scores[scored], threshold).astype(bool)
    rows = np.arange(len(scores))

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 4.6), sharex=True, height_ratios=[1, 1.2])
    top.plot(values, linewidth=0.7)
    shade(top, labels)
    top.set_ylabel("test series\n(3 variables)")
    top.legend(loc="upper left", fontsize=8, frameon=False)
    bottom.plot(rows, scores, color="tab:green", linewidth=0.8, label="normality score (lower = more anomalous)")
    bottom.axhline(threshold, color="black", linestyle=":", linewidth=0.8, label="alarm threshold stored by training")
    bottom.scatter(rows[flagged], scores[flagged], color="tab:red", s=6, zorder=3, label="alarm")
    shade(bottom, labels)
    bottom.set_yscale("symlog")
    bottom.set_ylabel("score (symlog)")
    bottom.set_xlabel("row of the test series (the first context-length rows are warm-up: no score)")
    bottom.legend(loc="lower left", fontsize=8, frameon=False)
    fig.suptitle("LSTM-AD on the demo data (bash scripts/demo.sh): 3 labelled anomalies, the score and its alarms",
                 fontsize=10)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=90)
    plt.close(fig)
    inside = int(np.sum(flagged & (labels == 1)))
    return (f"{output}: {int(flagged.sum())} alarm rows ({inside} inside a labelled anomaly), threshold "
            f"{threshold:.2f}, {int(scored.sum())} scored rows")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-dir", type=Path, default=Path("demo"), help="what scripts/demo.sh wrote")
    parser.add_argument("--output", type=Path, default=Path("docs/demo.png"))
    args = parser.parse_args(argv)
    print(draw(args.demo_dir, args.output))


if __name__ == "__main__":
    main()
