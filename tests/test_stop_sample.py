"""The stop sample (lstm_ad/stop_sample.py): the blocks' rows are exact, inside their parts and evenly spread,
the same every time; the fraction and the budget; a stopped job's sample; and the real `train` on 3 million
rows, stopped, writing its model well within SageMaker's 120 s."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import make_opt_ml, sine_series
from lstm_ad import stop_sample
from lstm_ad.hyperparameters import Hyperparameters
from lstm_ad.parallel.collectives import Collective
from lstm_ad.stop_sample import (
    BLOCK_ROWS,
    MIN_ROWS,
    Block,
    Roles,
    block_rows,
    budget_seconds,
    kept_rows,
    sample_fraction,
    spread_blocks,
    take,
)

TRAIN = str(Path(sys.executable).parent / "train")


def check_blocks(blocks: list[Block], lengths: list[int], rows: int) -> None:
    """Exactly `rows` rows (or all), each block inside its part, in order, none overlapping."""
    assert sum(map(len, blocks)) == min(rows, sum(lengths))
    assert all(0 <= b.start < b.stop <= lengths[b.part] for b in blocks)
    assert all((a.part, a.stop) <= (b.part, b.start) for a, b in zip(blocks[:-1], blocks[1:], strict=True))


@pytest.mark.parametrize("lengths, rows, block", [
    ([1_000_000], 100_000, 20_000),
    ([800_000, 200_100], 77_777, 20_000),
    ([500] * 300, 7_001, 20_000),  # short parts: whole parts, every so many
    ([3, 70_001, 0, 45_000, 12], 50_000, 20_000),
    ([1_000_000], 1, 20_000),
    ([10_000, 10_000], 19_999, 3_000),
])
def test_blocks_hold_exactly_the_rows_asked_inside_their_parts(lengths: list[int], rows: int, block: int) -> None:
    blocks = spread_blocks(lengths, rows, block)
    check_blocks(blocks, lengths, rows)
    assert all(len(b) <= block for b in blocks)
    assert spread_blocks(lengths, rows, block) == blocks  # deterministic


def test_all_rows_when_they_are_no_more_than_asked_and_none_for_none() -> None:
    assert spread_blocks([100, 0, 50], 150, 20) == [Block(0, 0, 100), Block(2, 0, 50)]
    assert spread_blocks([100, 50], 10**9, 20) == [Block(0, 0, 100), Block(1, 0, 50)]
    assert spread_blocks([100, 50], 0, 20) == []
    with pytest.raises(ValueError, match="block must be at least 1 row"):
        spread_blocks([100], 10, 0)


def test_blocks_are_spread_evenly_over_a_long_series() -> None:
    blocks = spread_blocks([1_000_000], 100_000, 20_000)
    assert [len(b) for b in blocks] == [20_000] * 5
    middles = np.array([(b.start + b.stop) / 2 for b in blocks])
    assert np.diff(middles).tolist() == [200_000] * 4 and abs(middles[0] - 100_000) <= 20_000  # a block's length
    # Over many short files: every tenth, from the fifth on, each whole.
    short = spread_blocks([500] * 300, 15_000, 20_000)
    assert [b.part for b in short] == list(range(5, 300, 10)) and all(len(b) == 500 for b in short)


def test_take_gives_each_blocks_rows() -> None:
    parts = [np.arange(10.0)[:, None], np.arange(100.0, 120.0)[:, None]]
    taken = take(parts, [Block(0, 2, 5), Block(1, 10, 12)])
    assert [t[:, 0].tolist() for t in taken] == [[2.0, 3.0, 4.0], [110.0, 111.0]]


def test_fraction_budget_and_rows_kept() -> None:
    assert sample_fraction(1e-4, 100_000, 30) == 1.0  # 10 s of work: all rows
    assert sample_fraction(1e-4, 6_000_000, 30) == pytest.approx(0.05)
    assert kept_rows(4_000_000, 0.05) == 200_000
    assert kept_rows(100_000, 0.05) == MIN_ROWS and kept_rows(3_000, 0.05) == 3_000 and kept_rows(7, 1.0) == 7
    defaults = Hyperparameters()
    assert budget_seconds(defaults, 1) == stop_sample.BUDGET_S
    assert budget_seconds(defaults, 3) == budget_seconds(Hyperparameters(error_centres=10), 1) \
        == stop_sample.EXPENSIVE_BUDGET_S < stop_sample.BUDGET_S
    assert block_rows(defaults) == BLOCK_ROWS and block_rows(Hyperparameters(context_length=5000)) == 50_000


def random_errors(context_length: int, dimension: int):
    rng = np.random.default_rng(0)

    def errors_of(parts: list[np.ndarray]) -> list[np.ndarray]:
        return [rng.standard_normal((max(len(p) - context_length, 0), dimension)).astype(np.float32) for p in parts]
    return errors_of


def test_a_stopped_job_keeps_the_fraction_its_budget_allows(monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    hp = Hyperparameters(context_length=50, prediction_length=2, error_centres=100, discord_refs=64)
    series = sine_series(500_000, 1, period=40)
    roles = Roles([series[:300_000], series[300_000:400_000]], [series[400_000:450_000], series[450_000:]],
                  [series[:30_000]])
    monkeypatch.setattr(stop_sample, "EXPENSIVE_BUDGET_S", 1e-9)  # any machine is too slow for it: the floor
    with caplog.at_level(logging.INFO):
        sampled, found = stop_sample.bounded(roles, hp, 2, random_errors(50, 2), Collective())
    assert [sum(map(len, parts)) for parts in (sampled.fitting, sampled.calibration, sampled.validation)] \
        == [MIN_ROWS, MIN_ROWS, MIN_ROWS]
    assert (found.rows, found.of, found.budget_s) == (3 * MIN_ROWS, 530_000, 1e-9) and found.seconds_per_row > 0
    assert "the error model is fitted on a sample of 30000 of the 530000 fitting, calibration and validation " \
           "rows (5.7 %" in caplog.text
    assert "Dominant period" not in caplog.text  # the probe's fit says nothing of itself

    monkeypatch.setattr(stop_sample, "EXPENSIVE_BUDGET_S", 1e9)  # all rows fit
    caplog.clear()
    with caplog.at_level(logging.INFO):
        whole, found = stop_sample.bounded(roles, hp, 2, random_errors(50, 2), Collective())
    for kept, given in zip((whole.fitting, whole.calibration, whole.validation),
                           (roles.fitting, roles.calibration, roles.validation), strict=True):
        assert [len(p) for p in kept] == [len(p) for p in given]
        assert all(np.shares_memory(a, b) for a, b in zip(kept, given, strict=True))
    assert found.rows == found.of == 530_000
    assert "the error model is fitted on all 530000 rows" in caplog.text


@pytest.mark.slow
def test_a_stopped_train_on_3m_rows_writes_its_model_well_within_120_s(tmp_path: Path) -> None:
    """The bound where it matters: the real `train`, SIGTERM early in epoch 2 (a stop before the first epoch
    completes saves nothing), the model written and the process gone within 60 s of the signal: half of what
    SageMaker allows. Unbounded, 5M rows with centres took 38-77 s here (bench_stop.py)."""
    rows = 3_000_000
    base = make_opt_ml(tmp_path, {"sequence-stride": "1000", "error-centres": "10000"},
                       {"training": {"big.csv": sine_series(rows, 1, period=100)}})
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "PYTHONUNBUFFERED": "1"}
    log = []
    signalled = None
    with subprocess.Popen([TRAIN], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            if signalled is None and "epoch 1/50 done" in line:
                process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
        code = process.wait(timeout=300)
    elapsed = time.monotonic() - signalled if signalled else float("nan")
    text = "".join(log)
    assert code == 0 and elapsed < 60, (elapsed, text[-3000:])
    assert "the error model is fitted on a sample of" in text, text[-3000:]
    for name in ("model.json", "weights.npz", "centres.npz", "discord.npz"):
        assert (base / "model" / name).is_file(), name
    summary = json.loads((base / "model" / "model.json").read_text())["summary"]
    assert summary["interrupted"] is True
    sample = summary["stop_sample"]
    assert 3 * MIN_ROWS <= sample["rows"] < sample["of"] == rows + 100  # + the calibration part's warm-up rows
