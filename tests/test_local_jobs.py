"""The local job runner with the real entrypoints: `train` in a job folder, `serve` (gunicorn) on a free port.

One tiny model is trained per module; each transform test starts the real server once.
Batch transform output is checked row by row against `Predictor.score` run in-process
on the same rows (an independent path: no HTTP, no CSV assembly).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_HYPERPARAMETERS, sine_series, write_csv
from lstm_ad.predictor import Predictor
from lstm_ad_local.errors import LocalJobError
from lstm_ad_local.jobs import run_training_job
from lstm_ad_local.series_files import join_outputs, margins, split_series
from lstm_ad_local.transform import TransformSettings, run_transform_job

COLUMNS = 2
CONTEXT = int(TINY_HYPERPARAMETERS["context-length"])
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny model trained by the local training job, with the job folder kept for inspection."""
    base = tmp_path_factory.mktemp("local-train")
    train = write_csv(base / "data" / "train" / "series.csv", sine_series(400, COLUMNS))
    write_csv(base / "data" / "train" / "more" / "series2.csv", sine_series(300, COLUMNS, seed=1))
    validation = write_csv(base / "data" / "valid.csv", sine_series(200, COLUMNS, seed=2))
    lines: list[str] = []
    result = run_training_job({"training": train.parent, "validation": validation}, TINY_HYPERPARAMETERS,
                              base / "output", job_name="tiny", job_dir=base / "job", echo=lines.append)
    unpacked = base / "unpacked"
    with tarfile.open(result.model_artifact) as archive:
        archive.extractall(unpacked, filter="data")
    return {"base": base, "artifact": result.model_artifact, "job": base / "job", "unpacked": unpacked,
            "metrics": result.final_metrics, "log": "\n".join(lines)}  # type: ignore[dict-item]


def _predictor(trained: dict[str, Path]) -> Predictor:
    return Predictor.load(trained["unpacked"])


def _out_rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().split("\n")[:-1]]  # the file ends with a newline


def _assert_matches_reference(rows: list[list[str]], values: np.ndarray, predictor: Predictor) -> None:
    """The .out rows of one request equal Predictor.score of the same rows (empty fields for warm-up)."""
    reference = predictor.score(values)
    assert len(rows) == len(values)
    for index, row in enumerate(rows):
        assert len(row) == 1 + COLUMNS, row
        if index < CONTEXT:
            assert row == [""] * (1 + COLUMNS), (index, row)
            continue
        assert float(row[0]) == pytest.approx(reference.score[index], rel=1e-4, abs=1e-3)
        assert [float(x) for x in row[1:]] == pytest.approx(reference.predictions[index], rel=1e-4, abs=1e-4)


# -- training -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_training_job_lays_out_opt_ml_and_packs_the_model(trained: dict[str, Path]) -> None:
    config = trained["job"] / "input" / "config"
    hyperparameters = json.loads((config / "hyperparameters.json").read_text())
    assert hyperparameters == TINY_HYPERPARAMETERS and all(isinstance(v, str) for v in hyperparameters.values())
    assert set(json.loads((config / "inputdataconfig.json").read_text())) == {"training", "validation"}
    assert json.loads((config / "resourceconfig.json").read_text())["hosts"] == ["algo-1"]
    data = trained["job"] / "input" / "data"
    assert (data / "training" / "more" / "series2.csv").is_file()  # folder structure kept
    assert (data / "validation" / "valid.csv").is_file()  # a single file becomes the channel's only file

    with tarfile.open(trained["artifact"]) as archive:
        # at the root, as SageMaker packs
        assert sorted(archive.getnames()) == ["model.json", "weights.npz"]  # several columns: no discord term
    assert _predictor(trained).columns == COLUMNS
    assert {"train:mse", "train:mae", "valid:mse", "valid:mae"} <= set(trained["metrics"])
    assert all(math.isfinite(v) for v in trained["metrics"].values())
    assert "train:mse=" in trained["log"]  # the log was streamed


@pytest.mark.slow
def test_failed_training_job_shows_the_failure_file(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", sine_series(200, COLUMNS))
    with pytest.raises(LocalJobError) as failure:
        run_training_job({"training": train}, {**TINY_HYPERPARAMETERS, "context-length": "many", "epoch": "3"},
                         tmp_path / "output", job_name="bad", echo=None)
    message = str(failure.value)
    assert "Training job bad failed (exit code 2). Failure file:" in message
    assert "`context-length` must be an integer" in message and "unknown hyperparameter `epoch`" in message
    assert not (tmp_path / "output" / "model.tar.gz").exists()


def test_training_job_names_missing_input(tmp_path: Path) -> None:
    with pytest.raises(LocalJobError, match=r"training: .*nowhere\.csv"):
        run_training_job({"training": tmp_path / "nowhere.csv"}, {}, tmp_path / "output", echo=None)


# -- batch transform ----------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_transform_whole_files_in_input_order(trained: dict[str, Path], tmp_path: Path) -> None:
    """SplitType None: one request per file; one .out per file, one line per input row, nested keys kept."""
    inputs = {"b.csv": sine_series(120, COLUMNS, seed=5), "a/c.csv": sine_series(90, COLUMNS, seed=6)}
    for name, values in inputs.items():
        write_csv(tmp_path / "input" / name, values)
    (tmp_path / "input" / ".hidden").write_text("not data")
    done = subprocess.run([str(BIN / "lstm-ad-local"), "transform", "--model", str(trained["artifact"]),
                           "--input", str(tmp_path / "input"), "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    expected = [tmp_path / "out" / "a" / "c.csv.out", tmp_path / "out" / "b.csv.out"]  # key order
    assert done.stdout.strip() == "Output: " + ", ".join(str(p) for p in expected)
    assert sorted(p for p in (tmp_path / "out").rglob("*") if p.is_file()) == expected
    predictor = _predictor(trained)
    for name in inputs:
        _assert_matches_reference(_out_rows(tmp_path / "out" / f"{name}.out"), np.loadtxt(
            tmp_path / "input" / name, delimiter=","), predictor)


@pytest.mark.slow
def test_cli_transform_with_optional_outputs(trained: dict[str, Path], tmp_path: Path) -> None:
    """--outputs sets LSTM_AD_OUTPUT on the server: alarm and attribution columns after the default ones."""
    values = sine_series(120, COLUMNS, seed=5)
    write_csv(tmp_path / "input" / "b.csv", values)
    done = subprocess.run([str(BIN / "lstm-ad-local"), "transform", "--model", str(trained["artifact"]),
                           "--input", str(tmp_path / "input"), "--output", str(tmp_path / "out"),
                           "--outputs", "alarm,attribution"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = _out_rows(tmp_path / "out" / "b.csv.out")
    expected = _predictor(trained).score(values, alarm=True, attribution=True)
    assert rows[:CONTEXT] == [[""] * (2 + 2 * COLUMNS)] * CONTEXT
    got = np.array([[float(x) for x in row] for row in rows[CONTEXT:]])
    assert got.shape == (len(values) - CONTEXT, 2 + 2 * COLUMNS)
    # The server's torch threads may round differently (as in _assert_matches_reference): compare loosely,
    # and the alarms where the score is not within rounding of the threshold.
    clear = np.abs(expected.score[CONTEXT:] - _predictor(trained).error_model.alarm_threshold) > 1e-2
    np.testing.assert_array_equal(got[clear, 1 + COLUMNS], expected.alarm[CONTEXT:][clear])
    np.testing.assert_allclose(got[:, 2 + COLUMNS:], expected.attribution[CONTEXT:], rtol=1e-3, atol=1e-3)


@pytest.mark.slow
def test_line_split_multi_record_assembles_mini_batches_in_order(trained: dict[str, Path], tmp_path: Path) -> None:
    """SplitType Line + MultiRecord: every mini-batch is an independent request with its own warm-up."""
    values = np.round(sine_series(300, COLUMNS, seed=7) + 3.0, 6)  # positive: every CSV line is 18 bytes
    path = write_csv(tmp_path / "input" / "series.csv", values)
    line_bytes = len(path.read_bytes().splitlines(keepends=True)[0])
    settings = TransformSettings(split_type="Line", strategy="MultiRecord", max_payload_mb=0.002)
    result = run_transform_job(trained["artifact"], tmp_path / "input", tmp_path / "out", settings)

    per_batch = int(0.002 * 1024 * 1024) // line_bytes  # whole records that fit in the payload limit
    batches = [values[start:start + per_batch] for start in range(0, len(values), per_batch)]
    assert len(batches) == 3 and all(len(batch) > CONTEXT for batch in batches)
    rows = _out_rows(result.outputs[0])
    assert len(rows) == len(values)
    predictor = _predictor(trained)
    for number, batch in enumerate(batches):
        _assert_matches_reference(rows[number * per_batch:number * per_batch + len(batch)], batch, predictor)
    assert result.settings.max_concurrent_transforms >= 1
    assert result.settings.strategy == "MultiRecord"


@pytest.mark.slow
def test_line_split_single_record_completes_with_an_empty_row_per_row(trained: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    """SingleRecord sends one row per request: each is all warm-up, none fails, every row is answered."""
    values = sine_series(60, COLUMNS, seed=8)
    write_csv(tmp_path / "input" / "series.csv", values)
    settings = TransformSettings(split_type="Line", strategy="SingleRecord", max_concurrent_transforms=2)
    rows = _out_rows(run_transform_job(trained["artifact"], tmp_path / "input", tmp_path / "out", settings).outputs[0])
    assert rows == [[""] * (1 + COLUMNS)] * len(values)


@pytest.mark.slow
def test_line_split_with_a_short_last_mini_batch_completes(trained: dict[str, Path], tmp_path: Path) -> None:
    """The documented cost of Line splitting: context-length empty rows at the start of every mini-batch,
    and a last mini-batch of at most context-length rows answered with empty rows only."""
    values = np.round(sine_series(289, COLUMNS, seed=9) + 3.0, 6)  # every CSV line is 18 bytes: 93 a batch
    path = write_csv(tmp_path / "input" / "series.csv", values)
    per_batch = int(0.0016 * 1024 * 1024) // len(path.read_bytes().splitlines(keepends=True)[0])
    assert len(values) % per_batch <= CONTEXT  # the last mini-batch is all warm-up
    settings = TransformSettings(split_type="Line", strategy="MultiRecord", max_payload_mb=0.0016)
    rows = _out_rows(run_transform_job(trained["artifact"], tmp_path / "input", tmp_path / "out", settings).outputs[0])
    assert len(rows) == len(values)
    empty = [index for index, row in enumerate(rows) if row == [""] * (1 + COLUMNS)]
    full_batches = len(values) // per_batch
    expected = [b * per_batch + i for b in range(full_batches) for i in range(CONTEXT)]
    expected += list(range(full_batches * per_batch, len(values)))
    assert empty == expected


@pytest.mark.slow
def test_a_series_split_into_overlapping_files_joins_back_gap_free(trained: dict[str, Path], tmp_path: Path) -> None:
    """For series above the 100 MB request limit: split (the layout read from the model: parts on multiples of its
    1,024-row chunks, overlapping by two chunks: a chunk and the score window's 12 rows before a row, its 12 after;
    no discord term on several columns), transform, join: the scores of one long request."""
    values = sine_series(7000, COLUMNS, seed=10)
    series = write_csv(tmp_path / "series.csv", values)
    cli = [str(BIN / "lstm-ad-local")]
    split = subprocess.run([*cli, "split", "--input", str(series), "--output", str(tmp_path / "parts"),
                            "--rows-per-part", "4500", "--model", str(trained["artifact"])],
                           capture_output=True, text=True, timeout=60)
    assert split.returncode == 0 and split.stdout.strip() == f"3 parts in {tmp_path / 'parts'}", split.stderr
    run_transform_job(trained["artifact"], tmp_path / "parts", tmp_path / "out", TransformSettings())
    joined = subprocess.run([*cli, "join", "--outputs", str(tmp_path / "out"), "--output", str(tmp_path / "all.out"),
                             "--context-length", str(CONTEXT)], capture_output=True, text=True, timeout=60)  # same
    assert joined.returncode == 0, joined.stderr
    rows = _out_rows(tmp_path / "all.out")
    assert len(rows) == len(values)
    assert [index for index, row in enumerate(rows) if row[0] == ""] == list(range(CONTEXT))  # warm-up once
    whole = _predictor(trained).score(np.loadtxt(series, delimiter=",")).score  # the values as the file holds them
    scores = np.array([float(row[0]) for row in rows[CONTEXT:]])
    np.testing.assert_allclose(scores, whole[CONTEXT:], rtol=1e-8)  # the CSV's 9 digits


@pytest.mark.slow
def test_assemble_with_line_adds_a_newline_after_every_answer(trained: dict[str, Path], tmp_path: Path) -> None:
    """As the SDK's local mode does (and the API reference words it): so with Line splitting, AssembleWith=None
    is the setting that gives one line per input row."""
    values = np.round(sine_series(200, COLUMNS, seed=11) + 3.0, 6)  # 18-byte lines: 93 a mini-batch
    write_csv(tmp_path / "input" / "series.csv", values)
    settings = TransformSettings(split_type="Line", strategy="MultiRecord", max_payload_mb=0.0016, assemble_with="Line")
    text = run_transform_job(trained["artifact"], tmp_path / "input", tmp_path / "out", settings).outputs[0].read_text()
    lines = text.split("\n")[:-1]
    assert len(lines) == len(values) + 3 and [i for i, line in enumerate(lines) if line == ""] == [93, 187, 202]


@pytest.mark.slow
def test_payload_over_the_limit_fails_the_file_and_stops_the_server(trained: dict[str, Path], tmp_path: Path) -> None:
    write_csv(tmp_path / "input" / "big.csv", sine_series(400, COLUMNS))
    job = tmp_path / "job"
    with pytest.raises(LocalJobError, match=r"big\.csv: The file is 0\.\d+ MB, over MaxPayloadInMB") as failure:
        run_transform_job(trained["artifact"], tmp_path / "input", tmp_path / "out",
                          TransformSettings(max_payload_mb=0.001), job_dir=job)
    assert "overlap by what the model reads around a row (lstm-ad-local split --model)" in str(failure.value)
    assert not (tmp_path / "out" / "big.csv.out").exists()
    assert (job / "model" / "model.json").is_file()  # the model was unpacked where SAGEMAKER_BASE_DIR points
    assert _processes_with(str(job)) == []  # the server (gunicorn and its workers) is gone


@pytest.mark.slow
def test_server_that_dies_at_start_is_reported_with_its_log(trained: dict[str, Path], tmp_path: Path) -> None:
    write_csv(tmp_path / "input" / "x.csv", sine_series(50, COLUMNS))
    crash = [sys.executable, "-c", "import sys; print('cannot load the model'); sys.exit(3)"]
    with pytest.raises(LocalJobError, match=r"(?s)exited with code 3 before answering /ping.*cannot load the model"):
        run_transform_job(trained["artifact"], tmp_path / "input", tmp_path / "out", serve_command=crash)


def test_invalid_settings_are_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(LocalJobError, match="split type 'RecordIO'.*max payload 500"):
        run_transform_job(tmp_path / "model.tar.gz", tmp_path, tmp_path / "out",
                          TransformSettings(split_type="RecordIO", max_payload_mb=500))


def _processes_with(text: str) -> list[int]:
    """Processes whose environment mentions `text` (Linux /proc; empty elsewhere)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if text.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_demo_data_labels_every_injected_anomaly(tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "lstm-ad-local"), "demo-data", "--output", str(tmp_path), "--seed", "3"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    test = np.loadtxt(tmp_path / "test" / "test.csv", delimiter=",")
    labels = np.loadtxt(tmp_path / "test_labels.csv", dtype=int)
    anomalies = json.loads((tmp_path / "anomalies.json").read_text())
    assert test.shape == (1200, 3) and np.loadtxt(tmp_path / "train" / "train.csv", delimiter=",").shape == (2500, 3)
    assert labels.sum() == sum(a["end"] - a["start"] for a in anomalies)
    assert [a["kind"] for a in anomalies] == ["spike", "frequency", "flatline"]
    for anomaly in anomalies:
        assert labels[anomaly["start"]:anomaly["end"]].all()
        assert f"{anomaly['kind']} rows {anomaly['start']}-{anomaly['end'] - 1}" in done.stdout
    flat = anomalies[2]
    assert np.ptp(test[flat["start"]:flat["end"], 2]) == 0  # the stuck sensor really is stuck


@pytest.mark.slow
def test_demo_report_ranks_each_anomaly_and_says_which_rows_score_lower(tmp_path: Path) -> None:
    scores = {2: 0, 3: -5, 4: 1, 5: -3, 6: -10, 7: -1, 8: 0, 9: -2, **{r: 0 for r in range(10, 15)}, 15: -20}
    out = tmp_path / "test.csv.out"
    out.write_text(",0.5\n,0.5\n" + "".join(f"{scores[r]},0.5\n" for r in range(2, 16)))  # 2 warm-up rows
    labels = tmp_path / "labels.csv"
    labels.write_text("".join(f"{int(r in (5, 6, 9))}\n" for r in range(16)))
    done = subprocess.run([str(BIN / "lstm-ad-local"), "demo-report", "--out", str(out), "--labels", str(labels)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # Ranked: 15 (-20, normal, 6 rows from an anomaly), 6 (-10), 3 (-5, normal, 2 rows before one), 5, 9, ...
    assert "rows 5-6: lowest score -10.00 at row 6, rank 2 of 14 (0 / 0 / 1)" in done.stdout
    assert "rows 9-9: lowest score -2.00 at row 9, rank 5 of 14 (2 / 1 / 1)" in done.stdout


def test_join_takes_each_row_from_the_part_whose_score_window_around_it_is_whole(tmp_path: Path) -> None:
    """context-length 5 (chunks of 1,024 rows), score-window 5 (2 rows before, 2 after): a row needs a chunk and 2
    rows before it and 2 after, so parts overlap by two chunks, 2,048 rows, and hold whole chunks."""
    series = tmp_path / "series.csv"
    series.write_text("".join(f"{row}\n" for row in range(9000)))
    head, tail = margins(5, 5)
    assert (head, tail) == (2046, 2)
    parts = split_series(series, tmp_path / "parts", 5000, head + tail, 1024)  # 5,000: 4 chunks, 4,096 rows
    assert [p.read_text().split()[0] for p in parts] == ["0", "2048", "4096", "6144"]  # on chunk boundaries
    (tmp_path / "out").mkdir()
    for number, part in enumerate(parts, start=1):  # a stand-in answer: which part scored the row, and the row
        answer = "".join(f"{number},{row}\n" for row in part.read_text().split())
        (tmp_path / "out" / f"{part.name}.out").write_text(answer)
    joined = join_outputs(sorted((tmp_path / "out").glob("*.out")), tmp_path / "all.out", head, tail, 1024)
    lines = [line.split(",") for line in joined.read_text().splitlines()]
    assert [int(row) for _, row in lines] == list(range(9000))
    # Part 1 up to 2 rows before its end (row 4093); part 2 from 2,046 rows after its start (2048 + 2046) to 2
    # before its end (6141); part 3 from 4096 + 2046 to 8189; part 4 from 6144 + 2046 to the end.
    assert [int(part) for part, _ in lines] == [1] * 4094 + [2] * 2048 + [3] * 2048 + [4] * 810


def test_join_refuses_parts_not_split_on_chunk_boundaries_and_writes_nothing(tmp_path: Path) -> None:
    """Parts cut elsewhere (by hand, or by the tool before parts started on chunk boundaries) would be joined with
    rows doubled or lost."""
    (tmp_path / "out").mkdir()
    for number, rows in enumerate([range(0, 3000), range(952, 3952), range(1904, 4000)], start=1):
        (tmp_path / "out" / f"part-{number:05d}.csv.out").write_text("".join(f"{row}\n" for row in rows))
    with pytest.raises(LocalJobError, match="part-00001.csv.out has 3000 lines, not whole chunks of 1024 rows"):
        join_outputs(sorted((tmp_path / "out").glob("*.out")), tmp_path / "all.out", 2046, 2, 1024)
    assert not (tmp_path / "all.out").exists() and not list(tmp_path.glob("all.out*"))


def test_split_refuses_parts_too_short_for_the_overlap_and_a_chunk(tmp_path: Path) -> None:
    series = tmp_path / "series.csv"
    series.write_text("".join(f"{row}\n" for row in range(9000)))
    with pytest.raises(LocalJobError, match="must be at least 3072"):
        split_series(series, tmp_path / "parts", 3000, 2048, 1024)
