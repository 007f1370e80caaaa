"""The benchmark scripts run end to end and print the tables the README quotes."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from conftest import REPO, shared_data

TINY = ["epochs=1", "hidden-size=4", "num-layers=1", "context-length=20", "sequence-stride=50"]


def run_script(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_bench_quality_scores_one_ucr_series_through_the_train_entrypoint(tmp_path: Path) -> None:
    shared_data("ucr-dev", "053_UCR_Anomaly_DISTORTEDWalkingAceleration1_1500_2764_2995.txt")
    out = tmp_path / "quality.csv"
    printed = run_script("scripts/bench_quality.py", "--series", "053_", "--no-peer", "--no-smd",
                         "--work", str(tmp_path / "work"), "--out", str(out), "--hyperparameters", *TINY)

    lines = printed.splitlines()
    header = next(line for line in lines if line.startswith("series"))
    assert header.split()[:6] == ["series", "rows", "train_end", "anomaly", "ours_row", "ours_hit"]
    row = next(line for line in lines if line.startswith("053_")).split()
    assert row[1:4] == ["6684", "1500", "2764-2995"]
    assert 1500 <= int(row[4]) < 6684  # the most anomalous row is a test row
    assert any(line.startswith("totals:") and '"series": 1' in line for line in lines)
    with out.open() as f:
        (saved,) = list(csv.DictReader(f))
    assert saved["ours_hit"] == str(int(2664 <= int(saved["ours_row"]) <= 3095))
    assert 0.0 <= float(saved["ours_aucpr"]) <= 1.0
    # the model really came from `train`: its artifact and log are in the job folder
    job = tmp_path / "work" / "053_DISTORTEDWalkingAceleration1"
    assert (job / "model" / "model.json").is_file() and "Model written" in (job / "train.log").read_text()


def test_bench_quality_rejects_an_unknown_hyperparameter_with_the_products_message() -> None:
    shared_data("ucr-dev")
    done = subprocess.run([sys.executable, "scripts/bench_quality.py", "--no-peer", "--no-smd",
                           "--hyperparameters", "hiden-size=4"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode != 0
    assert "hiden-size" in done.stderr


def test_bench_speed_quick_prints_training_and_scoring_rows() -> None:
    printed = run_script("scripts/bench_speed.py", "--quick", "--epochs", "1", "--threads", "1")
    table = {line.split("  ")[0].strip(): line for line in printed.splitlines()}
    for name in ("ours train wall", "ours train throughput", "reference train wall",
                 "speed-up over reference", "score 32000 rows throughput", "peak memory (ru_maxrss)"):
        assert name in table, printed
    assert "x 1830 windows of 100 + 10 rows" in table["epochs"]
    assert float(table["ours train wall"].split()[3]) > 0


def test_bench_answers_reports_alarm_precision_recall_on_one_ucr_series(tmp_path: Path) -> None:
    shared_data("ucr-dev", "053_UCR_Anomaly_DISTORTEDWalkingAceleration1_1500_2764_2995.txt")
    out = tmp_path / "answers.json"
    printed = run_script("scripts/bench_answers.py", "--series", "053_", "--no-smd", "--work", str(tmp_path / "w"),
                         "--out", str(out), "--hyperparameters", *TINY)
    assert any(line.startswith("ucr:") for line in printed.splitlines())
    import json
    ucr = json.loads(out.read_text())["ucr"]
    assert ucr["series"] == 1 and set(ucr["summed"]) == {"tp", "fp", "fn", "precision", "recall", "f1"}
    assert ucr["summed"]["tp"] + ucr["summed"]["fn"] == 2995 - 2764  # every labelled row counted once
    assert "0.001" in ucr["alarm_fraction_sweep"]


def test_bench_distributed_prints_throughput_of_threads_and_ddp_with_the_ratios() -> None:
    printed = run_script("scripts/bench_distributed.py", "--epochs", "2", "--rounds", "1")
    for name in ("threads x1", "threads x2", "DDP x1", "DDP x2"):
        row = next(line for line in printed.splitlines() if line.startswith(name))
        assert float(row.split()[2]) > 0, printed
    assert "ratio DDP x2 / threads x2: " in printed
