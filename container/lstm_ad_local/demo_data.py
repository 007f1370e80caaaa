"""Generated demo data: a periodic multivariate series, and a test series with labelled anomalies.

Everything is generated here from a seed (no downloaded data), so the README's demo,
the notebook and the tests run anywhere. `report` compares the scores of a batch
transform `.out` file with the labels.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lstm_ad.data import parse_csv
from lstm_ad.errors import DataError

PERIOD = 50
COLUMNS = 3


@dataclass(frozen=True)
class Anomaly:
    start: int  # first anomalous row of the test series (0-based)
    end: int  # one past the last
    kind: str


@dataclass(frozen=True)
class DemoData:
    folder: Path
    train: Path  # train/train.csv
    test: Path  # test/test.csv
    labels: Path  # test_labels.csv: one 0/1 per test row
    anomalies: tuple[Anomaly, ...]

    def describe(self) -> str:
        spans = ", ".join(f"{a.kind} rows {a.start}-{a.end - 1}" for a in self.anomalies)
        return (f"Demo data in {self.folder}: {self.train.name} ({_rows(self.train)} rows), {self.test.name} "
                f"({_rows(self.test)} rows; anomalies: {spans}), labels in {self.labels.name}")


def _rows(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def periodic_series(rows: int, columns: int = COLUMNS, period: int = PERIOD, noise: float = 0.05,
                    seed: int = 0, start: int = 0) -> np.ndarray:
    """Each column: a phase-shifted fundamental plus a second harmonic, with Gaussian noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(start, start + rows)[:, None] * (2 * math.pi / period)
    phase = np.arange(columns)[None, :] * 2 * math.pi / max(columns, 1)
    clean = np.sin(t + phase) + 0.4 * np.sin(2 * t + 2 * phase)
    return clean + noise * rng.standard_normal((rows, columns))


def make_demo(train_rows: int = 2500, test_rows: int = 1200, columns: int = COLUMNS, period: int = PERIOD,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[Anomaly, ...]]:
    """Train series, test series (continuing it), 0/1 labels per test row, and the anomaly spans."""
    if test_rows < 8 * period:
        raise ValueError(f"test_rows ({test_rows}) must be at least 8 periods ({8 * period}) to hold the anomalies")
    train = periodic_series(train_rows, columns, period, seed=seed)
    test = periodic_series(test_rows, columns, period, seed=seed + 1, start=train_rows)
    spike = Anomaly(int(test_rows * 0.35), int(test_rows * 0.35) + 6, "spike")
    faster = Anomaly(int(test_rows * 0.6), int(test_rows * 0.6) + period, "frequency")
    flat = Anomaly(int(test_rows * 0.85), int(test_rows * 0.85) + period // 2, "flatline")
    test[spike.start:spike.end, 0] += 1.5  # a short burst on one variable
    t = np.arange(faster.end - faster.start)[:, None] * (4 * math.pi / period)  # twice as fast, one period
    phase = np.arange(columns)[None, :] * 2 * math.pi / max(columns, 1)
    test[faster.start:faster.end] = np.sin(t + phase) + 0.4 * np.sin(2 * t + 2 * phase)
    test[flat.start:flat.end, columns - 1] = test[flat.start, columns - 1]  # a stuck sensor
    labels = np.zeros(test_rows, dtype=int)
    for anomaly in (spike, faster, flat):
        labels[anomaly.start:anomaly.end] = 1
    return train, test, labels, (spike, faster, flat)


def write_demo_data(folder: Path, seed: int = 0, train_rows: int = 2500, test_rows: int = 1200) -> DemoData:
    """Write train/train.csv, test/test.csv, test_labels.csv and anomalies.json under `folder`."""
    folder = Path(folder)
    train, test, labels, anomalies = make_demo(train_rows, test_rows, seed=seed)
    paths = DemoData(folder, folder / "train" / "train.csv", folder / "test" / "test.csv",
                     folder / "test_labels.csv", anomalies)
    for path, values in ((paths.train, train), (paths.test, test)):
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(path, values, delimiter=",", fmt="%.6f")
    np.savetxt(paths.labels, labels, fmt="%d")
    (folder / "anomalies.json").write_text(json.dumps([asdict(a) for a in anomalies], indent=1))
    return paths


def read_scores(out_path: Path) -> np.ndarray:
    """The first column of a batch transform .out (score, predictions...); NaN for warm-up rows."""
    scores = []
    for line_no, line in enumerate(Path(out_path).read_text().splitlines(), start=1):
        field = line.split(",", 1)[0].strip()
        try:
            scores.append(float(field) if field else math.nan)
        except ValueError as exc:
            raise DataError(f"{out_path}, line {line_no}: score {field!r} is not a number.") from exc
    return np.array(scores)


def report(out_path: Path, labels_path: Path, lowest: int = 8) -> str:
    """Text summary: where the lowest scores fall, and each labelled anomaly's best rank."""
    scores = read_scores(out_path)
    labels = parse_csv(Path(labels_path).read_text(), str(labels_path))[:, 0].astype(int)
    if len(labels) != len(scores):
        raise DataError(f"{out_path} has {len(scores)} rows but {labels_path} has {len(labels)} labels.")
    scored = np.flatnonzero(~np.isnan(scores))
    order = scored[np.argsort(scores[scored], kind="stable")]  # most anomalous first
    rank = np.empty(len(scores), dtype=int)
    rank[order] = np.arange(1, len(order) + 1)
    lines = [f"{out_path.name}: {len(scores)} rows, {len(scored)} scored, {len(scores) - len(scored)} warm-up rows "
             "with empty fields.", f"The {lowest} lowest normality scores (most anomalous rows):",
             "   row     score  label"]
    warm_up = int(np.argmax(~np.isnan(scores))) if len(scored) else 0  # = context-length
    lines += [f"{row:6d} {scores[row]:9.2f}  {_label(row, labels, warm_up)}" for row in order[:lowest]]
    lines.append("Labelled anomalies (rank 1 = the most anomalous row; the rows ranked above each: anomalous / "
                 "normal within context-length rows of an anomaly / normal elsewhere):")
    spans = _spans(labels)
    rows = np.arange(len(labels))
    # A normal row near an anomaly reads it in its context or its score window, so it may score low too.
    distance = np.min([np.maximum(start - rows, rows - (end - 1)) for start, end in spans]
                      or [np.full(len(rows), len(rows))], axis=0)
    for start, end in spans:
        inside = [row for row in range(start, end) if not np.isnan(scores[row])]
        if not inside:
            lines.append(f"  rows {start}-{end - 1}: inside the warm-up, not scored")
            continue
        best = min(inside, key=lambda row: rank[row])
        above = order[:rank[best] - 1]
        near = int(np.sum((labels[above] == 0) & (distance[above] <= warm_up)))
        far = int(np.sum((labels[above] == 0) & (distance[above] > warm_up)))
        lines.append(f"  rows {start}-{end - 1}: lowest score {scores[best]:.2f} at row {best}, rank {rank[best]} "
                     f"of {len(scored)} ({int(np.sum(labels[above] == 1))} / {near} / {far})")
    return "\n".join(lines)


def _label(row: int, labels: np.ndarray, warm_up: int) -> str:
    """ANOMALY, or how soon after one (its rows are still in the model's context), or '-'."""
    if labels[row]:
        return "ANOMALY"
    after = [row - end + 1 for _, end in _spans(labels) if 0 <= row - end < warm_up]
    if not after:
        return "-"
    return f"- ({min(after)} row{'s' if min(after) > 1 else ''} after an anomaly)"


def _spans(labels: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], labels, [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))
