"""The training job in a fake /opt/ml tree: in-process through `run_train` (what the `train` console
script calls), and as the real console script in a subprocess where signals are involved."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import multivariate_normal

from conftest import TINY_HYPERPARAMETERS, make_opt_ml, metric_values, sine_series
from lstm_ad.checkpoint import CHECKPOINT_FILE
from lstm_ad.predictor import Predictor
from lstm_ad.scoring.threshold import alarm_threshold
from lstm_ad.split import split_point
from lstm_ad.tensor_files import load_tensors

TRAIN = str(Path(sys.executable).parent / "train")


def run_train(base: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real console script in a subprocess."""
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([TRAIN], env=env, capture_output=True, text=True, timeout=timeout)


def test_trains_writes_artifact_and_metrics(tmp_path: Path, train_job):
    base = make_opt_ml(tmp_path, {**TINY_HYPERPARAMETERS, "epochs": "3", "early-stopping-patience": "0",
                                  "error-centres": "10000"}, {
        "training": {"a.csv": sine_series(400, 2), "b.csv": sine_series(300, 2, seed=1)},
        "validation": {"v.csv": sine_series(200, 2, seed=2)},
    })
    result = train_job(base)
    assert result.returncode == 0, result.stdout
    assert sorted(p.name for p in (base / "model").iterdir()) == ["centres.npz", "model.json", "weights.npz"]
    assert not (base / "output" / "failure").exists()

    for name in ("train_mse", "train_mae", "calibration_mse", "valid_mse", "valid_mae"):
        assert len(metric_values(result.stdout, name)) == 3, name  # one per epoch
    for name in ("train:mse", "train:mae", "calibration:mse", "valid:mse", "valid:mae", "alarm:threshold"):
        assert len(metric_values(result.stdout, name)) == 1, name

    state, _ = load_tensors(base / "model" / "weights.npz")
    assert set(state) >= {"head.weight", "lstm.weight_ih_l0"}
    meta = json.loads((base / "model" / "model.json").read_text())
    assert meta["hyperparameters"]["context-length"] == 20 and meta["columns"] == 2
    assert meta["summary"]["epochs_run"] == 3

    predictor = Predictor.load(base / "model")
    scored = predictor.score(sine_series(100, 2, seed=3))
    assert np.isnan(scored.score[:20]).all() and np.isfinite(scored.score[20:]).all()
    assert scored.predictions.shape == (100, 2)

    # The centres: every fitting and calibration row's error vector (660 rows, fewer than error-centres), in
    # file order. A calibration row is scored by the Gaussian (calibration covariance) centred on its nearest
    # centre other than its own vector: scipy's log-density against every centre, its own left out.
    files = (sine_series(400, 2), sine_series(300, 2, seed=1))
    parts = [(s[:split_point(len(s), 0.2)], s[split_point(len(s), 0.2) - 20:]) for s in files]
    vectors = [predictor.forecast_errors(part).errors[20:].astype(np.float64) for pair in parts for part in pair]
    centres = predictor.error_model.centres.astype(np.float64)
    assert meta["centres"] == {"file": "centres.npz", "count": 660}
    order = [vectors[0], vectors[2], vectors[1], vectors[3]]  # fitting parts, then calibration parts
    np.testing.assert_allclose(centres, np.concatenate(order), atol=1e-5)  # training scored on one thread
    density = multivariate_normal(np.zeros(4), predictor.error_model.gaussian.cov)
    rows, first = [], len(order[0]) + len(order[1])
    for calibration in order[2:]:
        own = range(first, first + len(calibration))
        rows.append(np.array([density.logpdf(centres[i] - np.delete(centres, i, axis=0)).max() for i in own]))
        first += len(calibration)

    # The score window's scales: median and median - 0.001 quantile of those log-likelihoods and of their centred
    # 25-row means (pandas' rolling mean as the reference), written in model.json.
    windows = [pd.Series(r).rolling(25, center=True, min_periods=1) for r in rows]
    means = np.concatenate([w.mean().to_numpy() for w in windows])
    counts = np.concatenate([w.count().to_numpy() for w in windows])  # fewer than 25 near a part's ends
    stored = meta["score_window"]
    assert stored["window"] == 25
    row_values, centre = np.concatenate(rows), np.median(means)
    np.testing.assert_allclose([stored["row"]["centre"], stored["row"]["spread"]],
                               [np.median(row_values), np.median(row_values) - np.quantile(row_values, 0.001)],
                               rtol=1e-5)
    np.testing.assert_allclose([stored["mean"]["centre"], stored["mean"]["spread"]],
                               [centre, -np.quantile((means - centre) * np.sqrt(counts / 25), 0.001)], rtol=1e-5)

    # The stored threshold follows the documented rule on those rows' scores (row or window, scoring/window.py),
    # and is reported in the log and the metrics.
    expected = alarm_threshold(np.concatenate([predictor.error_model.window(r) for r in rows]), 0.001)
    assert meta["alarm_threshold"] == predictor.error_model.alarm_threshold
    np.testing.assert_allclose(predictor.error_model.alarm_threshold, expected, rtol=1e-5)
    np.testing.assert_allclose(metric_values(result.stdout, "alarm:threshold"), [expected], rtol=1e-5)
    assert "Alarm threshold: score" in result.stdout and "calibration rows" in result.stdout


def test_trains_on_files_with_empty_cells_and_reports_what_it_left_out(tmp_path: Path, train_job):
    base = make_opt_ml(tmp_path, TINY_HYPERPARAMETERS, {"training": {}})
    values = sine_series(400, 2)
    values[100:130, 1] = np.nan
    values[350, 0] = np.nan  # in the calibration part
    text = "".join(",".join("" if np.isnan(v) else f"{v:.6f}" for v in row) + "\n" for row in values)
    (base / "input" / "data" / "training").mkdir(parents=True, exist_ok=True)
    (base / "input" / "data" / "training" / "gappy.csv").write_text(text)
    result = train_job(base)
    assert result.returncode == 0, result.stdout
    assert "Missing values: 31 empty cells" in result.stdout and "are skipped" in result.stdout
    summary = json.loads((base / "model" / "model.json").read_text())["summary"]
    assert summary["missing_values"] == 31 and summary["skipped_subsequences"] > 0
    assert summary["skipped_calibration_rows"] > 0


def test_accepts_gzip_training_files(tmp_path: Path, train_job):
    base = make_opt_ml(tmp_path, {**TINY_HYPERPARAMETERS, "epochs": "1"}, {"training": {}})
    (base / "input/data/training").mkdir(parents=True)
    csv = "\n".join(f"{v:.5f}" for v in sine_series(300)[:, 0])
    (base / "input/data/training/series.csv.gz").write_bytes(gzip.compress(csv.encode()))
    assert train_job(base).returncode == 0
    assert (base / "model" / "model.json").is_file()


GOOD = sine_series(300, 2)


def _with_text(text: str):
    return lambda base: (base / "input/data/training/bad.csv").write_text(text)


@pytest.mark.parametrize(
    ("hyperparameters", "files", "tweak", "reason"),
    [
        ({}, {"a.csv": GOOD}, _with_text("x,y\n1,2\n"),
         r"bad\.csv, line 1, column 1: 'x' is not a number; this looks like a header row"),
        ({}, {"a.csv": GOOD}, _with_text("1,2\n3,abc\n"), r"bad\.csv, line 2, column 2: 'abc' is not a number"),
        ({}, {"a.csv": GOOD}, _with_text("1,2\nNaN,2\n"), r"bad\.csv, line 2, column 1: 'NaN' is not a finite"),
        ({}, {"a.csv": GOOD}, _with_text("1,2\n1,2,3\n"), r"bad\.csv, line 2: has 3 columns but line 1 has 2"),
        ({}, {"a.csv": GOOD, "b.csv": sine_series(300, 3)}, None, r"b\.csv: has 3 columns but .*a\.csv has 2"),
        ({}, {"a.csv": GOOD[:25]}, None,
         r"a\.csv: has 25 rows; its fitting part .* is shorter than context-length \+ prediction-length = 22\. "
         r"Provide a longer series \(at least 27 rows\)"),
        ({}, {}, lambda base: (base / "input/data/training").mkdir(parents=True),
         r"The `training` channel .* has no files"),
        ({"epochs": "zero", "colour": "red"}, {"a.csv": GOOD}, None,
         r"Invalid hyperparameters \(2 problems\):\n  - `epochs` must be an integer, got \"zero\"\n"
         r"  - unknown hyperparameter `colour`"),
        # hostile or unusual input: a one-sentence reason, never "a bug in LSTM-AD"
        ({"prediction-length": "10"}, {"wide.csv": np.ones((300, 3000))}, None,
         r"The error model would have 30000 dimensions \(prediction-length 10 x 3000 columns\); at most 4096 "
         r"can be fitted\. Lower `prediction-length` to at most 1"),
        ({}, {"a.csv": GOOD}, _with_text("1,2\n3," + "9" * 200_000 + "\n"),
         r"bad\.csv, line 2, column 2: '9{37}\.\.\.' is not a finite number"),
        ({}, {"a.csv": GOOD}, _with_text("1,2\n3," + "x" * 60_000 + "\n"),  # quoted at most 40 characters long
         r"bad\.csv, line 2, column 2: 'x{37}\.\.\.' is not a number\. Every cell must be a plain decimal number"),
        ({}, {"a.csv": GOOD}, _with_text("1;2\n3;4\n"), r"bad\.csv, line 1, column 1: '1;2' holds a semicolon"),
        ({}, {"a.csv": GOOD}, lambda base: (base / "input/data/training/a.csv").write_text(
            "".join(f"{v:.4f},\n" for v in GOOD[:, 0])),
         r"Column 2 has no values in the fitting part .* every cell is empty\. Remove the column"),
        ({}, {"a.csv": np.r_[GOOD[:100], [[1e300, 0.0]], GOOD[101:]]}, None,
         r"Column 1: values as large as 1e\+300 make its mean or standard deviation overflow"),
        ({}, {"a.csv": GOOD}, lambda base: (base / "input/config/inputdataconfig.json").write_text(
            json.dumps({"training": "File"})), r"the entry of channel `training` must be a JSON object"),
        ({}, {"a.csv": GOOD}, lambda base: ((base / "model").rmdir(), (base / "model").write_text("not a folder")),
         r"Cannot write the model to .*model \(.*\)\. Give the training job more storage"),
    ],
)
def test_bad_input_fails_with_a_reason(tmp_path, hyperparameters, files, tweak, reason, train_job):
    base = make_opt_ml(tmp_path, {**TINY_HYPERPARAMETERS, **hyperparameters}, {"training": files})
    if tweak:
        tweak(base)
    result = train_job(base)
    assert result.returncode == 2, result.stdout
    failure = (base / "output" / "failure").read_text()
    assert re.search(reason, failure[:1024]), failure
    assert "Traceback" not in failure  # user errors need no traceback
    assert len(failure) <= 1024 and len(max(result.stdout.splitlines(), key=len)) < 2000  # FailureReason holds it
    model = base / "model"
    if model.is_file():  # the case that put a file where the model folder goes: left as it was
        assert model.read_text() == "not a folder"
    else:
        assert sorted(model.iterdir()) == []  # no partial artifact


def test_pipe_mode_and_unknown_channel_are_rejected(tmp_path: Path, train_job):
    base = make_opt_ml(tmp_path / "pipe", TINY_HYPERPARAMETERS, {"training": {"a.csv": GOOD}}, input_mode="Pipe")
    result = train_job(base)
    assert result.returncode == 2
    assert "uses input mode Pipe" in (base / "output" / "failure").read_text()

    base = make_opt_ml(tmp_path / "extra", TINY_HYPERPARAMETERS, {"training": {"a.csv": GOOD}, "test": {"t.csv": GOOD}})
    assert train_job(base).returncode == 2
    assert "Unknown channel(s) test" in (base / "output" / "failure").read_text()


def test_validation_columns_must_match_training(tmp_path: Path, train_job):
    base = make_opt_ml(tmp_path, TINY_HYPERPARAMETERS,
                       {"training": {"a.csv": GOOD}, "validation": {"v.csv": sine_series(100, 3)}})
    assert train_job(base).returncode == 2
    assert re.search(r"v\.csv: has 3 columns but .*a\.csv has 2", (base / "output" / "failure").read_text())


@pytest.mark.slow
def test_sigterm_saves_then_resume_matches_an_uninterrupted_run(tmp_path: Path):
    hyperparameters = {**TINY_HYPERPARAMETERS, "epochs": "20", "early-stopping-patience": "0", "dropout": "0.2",
                       "num-layers": "2"}
    channels = {"training": {"a.csv": sine_series(600, 1)}}

    reference = make_opt_ml(tmp_path / "reference", hyperparameters, channels)
    assert run_train(reference).returncode == 0

    base = make_opt_ml(tmp_path / "stopped", hyperparameters, channels)
    (base / "checkpoints").mkdir()
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "PYTHONUNBUFFERED": "1"}
    log = []
    with subprocess.Popen([TRAIN], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            if "epoch 3/20" in line:
                process.send_signal(signal.SIGTERM)
                break
        log += process.stdout.readlines()
        assert process.wait(timeout=60) == 0, "".join(log)
    stopped_meta = json.loads((base / "model" / "model.json").read_text())
    assert stopped_meta["summary"]["interrupted"] is True
    assert 3 <= stopped_meta["summary"]["epochs_run"] < 20
    assert (base / "checkpoints" / CHECKPOINT_FILE).is_file()

    resumed = run_train(base)  # a restarted job finds the checkpoint and carries on
    assert resumed.returncode == 0, resumed.stdout
    assert f"Resuming from checkpoint {base / 'checkpoints' / CHECKPOINT_FILE} after epoch " in resumed.stdout
    expected, _ = load_tensors(reference / "model" / "weights.npz")
    actual, _ = load_tensors(base / "model" / "weights.npz")
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, rtol=0, atol=0)


def test_checkpoint_of_other_hyperparameters_is_ignored(tmp_path: Path, train_job):
    base = make_opt_ml(tmp_path, {**TINY_HYPERPARAMETERS, "epochs": "1"}, {"training": {"a.csv": GOOD}})
    (base / "checkpoints").mkdir()
    assert train_job(base).returncode == 0
    (base / "input/config/hyperparameters.json").write_text(json.dumps({**TINY_HYPERPARAMETERS, "hidden-size": "5"}))
    result = train_job(base)
    assert result.returncode == 0
    assert "Ignoring checkpoint" in result.stdout and "training from scratch" in result.stdout


def test_scores_drop_where_an_anomaly_was_injected(tmp_path: Path, train_job):
    clean = sine_series(3000, 1, period=50, noise=0.02)
    base = make_opt_ml(tmp_path, {"context-length": "50", "hidden-size": "16", "epochs": "15", "sequence-stride": "5",
                                  "num-layers": "1", "lr": "0.01"}, {"training": {"clean.csv": clean}})
    result = train_job(base)
    assert result.returncode == 0, result.stdout
    test = sine_series(1000, 1, period=50, noise=0.02, seed=9)
    test[600:615, 0] = 0.8  # a flat segment where a sine should be
    model = Predictor.load(base / "model")
    assert model.error_model.discord is not None and model.error_model.discord.window == 50  # the sine's period
    scores = model.score(test).score
    # Rows up to 25 before and 25 after the segment have it in their 50-row discord subsequence (12 in their
    # 25-row score window): not normal rows.
    normal = np.r_[scores[50:575], scores[615 + 25:]]
    assert 598 <= int(np.nanargmin(scores)) <= 620
    assert np.nanmin(scores[600:615]) < normal.min() - 10
    alarm = model.score(test, alarm=True).alarm
    assert alarm[600:615].max() == 1  # the stored threshold catches it
    # and seldom fires on normal rows: here on two rows and on one stretch of about 25 (rows 915-939) whose
    # predictions are all a little worse, which the score window flags as a whole (its price, benchmarks.md).
    assert np.nanmean(np.r_[alarm[50:575], alarm[615 + 25:]]) < 0.05



@pytest.mark.slow
def test_sigterm_while_starting_up_still_leaves_a_failure_file(tmp_path: Path):
    """The handler is installed before torch loads: a job stopped in its first half second ends cleanly."""
    base = make_opt_ml(tmp_path, TINY_HYPERPARAMETERS, {"training": {"a.csv": GOOD}})
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([TRAIN], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 143, output
    assert "stopped before the first epoch" in (base / "output" / "failure").read_text()
    assert not (base / "model" / "weights.npz").exists()


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 512 KB file system (tmpfs), like a training volume that is almost full; needs root to mount."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount_point)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): the full-disk case is tested where it can be")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.slow
def test_a_full_disk_is_a_clear_failure_not_a_bug(small_disk: Path, train_job):
    base = make_opt_ml(small_disk, TINY_HYPERPARAMETERS, {"training": {"a.csv": GOOD}})
    free = os.statvfs(small_disk)
    (small_disk / "filler").write_bytes(b"\0" * (free.f_bavail * free.f_frsize - 4096))  # one page left
    result = train_job(base)
    assert result.returncode == 2, result.stdout
    failure = (base / "output" / "failure").read_text()
    assert re.match(r"Cannot write the model to .*/model \(No space left on device\)\. Give the training job more "
                    r"storage \(VolumeSizeInGB\)", failure), failure
    assert not any((base / "model").iterdir())  # no partial artifact
