"""The benchmark scripts run end to end and print the tables the README quotes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, shared_data

sys.path.insert(0, str(REPO / "scripts"))
import bench_quality  # noqa: E402  (a script, not a package)
import tsb_ad_peer  # noqa: E402

TINY = ["epochs=1", "hidden-size=4", "num-layers=1", "context-length=20", "sequence-stride=50"]
UCR_DEV_HALF_A = {1, 13, 14, 20, 22, 32, 40, 148, 49, 157, 57, 83, 113, 134, 169, 212, 248, 249, 250}


def run_script(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_bench_quality_scores_one_ucr_series_through_the_train_entrypoint(tmp_path: Path) -> None:
    series_file = shared_data("ucr-dev", "053_UCR_Anomaly_DISTORTEDWalkingAceleration1_1500_2764_2995.txt")
    out = tmp_path / "quality.csv"
    printed = run_script("scripts/bench_quality.py", "--series", "053_", "--seeds", "0", "--no-peer", "--no-smd",
                         "--work", str(tmp_path / "work"), "--out", str(out), "--hyperparameters", *TINY)

    lines = printed.splitlines()
    header = next(line for line in lines if line.startswith("series"))
    assert header.split()[:8] == ["series", "seed", "half", "rows", "train_end", "anomaly", "ours_row", "ours_hit"]
    assert "lstmad_row" not in header  # --no-peer: no peer columns
    row = next(line for line in lines if line.startswith("053_")).split()
    assert row[1:6] == ["0", "B", "6684", "1500", "2764-2995"]
    assert 1500 <= int(row[6]) < 6684  # the most anomalous row is a test row
    assert any(line.startswith("totals:") and '"series": 1' in line for line in lines)
    with out.open() as f:
        (saved,) = list(csv.DictReader(f))
    assert saved["ours_hit"] == str(int(2664 <= int(saved["ours_row"]) <= 3095))
    assert 0.0 <= float(saved["ours_aucpr"]) <= 1.0
    # the model really came from `train`: its artifact and log are in the job folder
    job = tmp_path / "work" / "053_DISTORTEDWalkingAceleration1" / "seed-0"
    assert (job / "model" / "model.json").is_file() and "Model written" in (job / "train.log").read_text()

    # bench_rescore re-scores the kept model (it fails unless its refit gives back the run's scores)
    rescored = run_script("scripts/bench_rescore.py", str(tmp_path / "work"), "--data", str(series_file.parent),
                          "--shifts", "0.5")
    assert f"UCR accuracy trained    seed-0 {float(saved['ours_hit']):.3f} ({saved['ours_hit']}/1)" in rescored
    assert "half B: 1 runs" in rescored and "tail, shift 0.5" in rescored and "empirical quantile" in rescored


def write_ucr_series(folder: Path, number: str, name: str, rows: int = 1200, train_end: int = 600,
                     anomaly: tuple[int, int] = (900, 910)) -> Path:
    """A sine series with a burst of spikes in [anomaly), saved under a UCR file name."""
    values = np.sin(2 * np.pi * np.arange(rows) / 40) + 0.02 * np.random.default_rng(int(number)).standard_normal(rows)
    values[anomaly[0]:anomaly[1]] += 3.0
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{number}_UCR_Anomaly_{name}_{train_end}_{anomaly[0]}_{anomaly[1]}.txt"
    np.savetxt(path, values, fmt="%.6f")
    return path


@pytest.mark.slow
def test_bench_quality_runs_on_series_files_of_ones_own_once_per_seed(tmp_path: Path) -> None:
    write_ucr_series(tmp_path / "mine", "001", "sineA")
    write_ucr_series(tmp_path / "mine", "002", "DISTORTEDsineB")
    out = tmp_path / "quality.csv"
    printed = run_script("scripts/bench_quality.py", str(tmp_path / "mine"), "--seeds", "3", "7", "--no-peer",
                         "--work", str(tmp_path / "work"), "--out", str(out), "--hyperparameters", *TINY)

    with out.open() as f:
        saved = list(csv.DictReader(f))
    # one row per series and seed; no smd-dev row when series are given
    assert [(r["series"], r["seed"], r["half"]) for r in saved] == [
        ("001_sineA", "3", "A"), ("001_sineA", "7", "A"), ("002_DISTORTEDsineB", "3", "B"),
        ("002_DISTORTEDsineB", "7", "B")]
    for seed in (3, 7):  # each seed really trained its own model
        config = json.loads((tmp_path / "work" / "001_sineA" / f"seed-{seed}" / "input" / "config" /
                             "hyperparameters.json").read_text())
        assert config["seed"] == str(seed)
    totals = json.loads(next(line for line in printed.splitlines() if line.startswith("totals:"))[len("totals:"):])
    assert totals["series"] == 2 and totals["halves"] == {"A": 1, "B": 1}
    per_seed = totals["ours"]["per_seed"]
    assert set(per_seed) == {"3", "7"}
    for key in ("3", "7"):
        hits = [int(r["ours_hit"]) for r in saved if r["seed"] == key]
        assert per_seed[key]["hits"] == sum(hits)
        assert per_seed[key]["accuracy_A"] == hits[0] and per_seed[key]["accuracy_B"] == hits[1]
    assert totals["ours"]["accuracy"] == pytest.approx(np.mean([per_seed[s]["accuracy"] for s in ("3", "7")]))
    assert totals["ours"]["train_s"]["max"] >= totals["ours"]["train_s"]["median"] > 0


@pytest.mark.slow
def test_bench_quality_names_a_file_whose_name_is_not_a_ucr_name(tmp_path: Path) -> None:
    write_ucr_series(tmp_path / "mine", "001", "sineA")
    bad = tmp_path / "mine" / "series_600_900_910.txt"
    bad.write_text("1\n2\n")
    done = subprocess.run([sys.executable, "scripts/bench_quality.py", str(tmp_path / "mine"), "--no-peer"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert str(bad) in done.stderr and "NNN_UCR_Anomaly_<name>_<trainEnd>_<anomStart>_<anomEnd>.txt" in done.stderr
    assert "Traceback" not in done.stderr


def test_ucr_files_reads_files_and_folders_once_and_rejects_bad_names(tmp_path: Path) -> None:
    first = write_ucr_series(tmp_path / "a", "010", "sineA")
    second = write_ucr_series(tmp_path / "b", "002", "NOISEsineA")
    found = bench_quality.ucr_files([tmp_path / "a", first, second])  # the file in both the folder and the list
    assert [(s.path, s.name, s.recording, s.train_end, s.start, s.end) for s in found] == [
        (second, "002_NOISEsineA", "sineA", 600, 900, 910), (first, "010_sineA", "sineA", 600, 900, 910)]

    for name, says in [("010_UCR_Anomaly_sineA_600_900.txt", "does not follow the UCR pattern"),
                       ("readme.txt", "does not follow the UCR pattern"),
                       ("010_UCR_Anomaly_sineA_950_900_910.txt", "needs 0 < trainEnd <= anomStart < anomEnd")]:
        with pytest.raises(bench_quality.SeriesNameError, match=says) as caught:
            bench_quality.parse_ucr_name(tmp_path / name)
        assert name in str(caught.value)
    twin = write_ucr_series(tmp_path / "twin", "010", "sineA")
    with pytest.raises(bench_quality.SeriesNameError, match="two files of one series name 010_sineA"):
        bench_quality.ucr_files([first, twin])
    with pytest.raises(bench_quality.SeriesNameError, match="no such file or folder"):
        bench_quality.ucr_files([tmp_path / "absent"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(bench_quality.SeriesNameError, match="no \\*.txt series files"):
        bench_quality.ucr_files([tmp_path / "empty"])
    long = write_ucr_series(tmp_path / "c", "003", "sineC", rows=800, train_end=400, anomaly=(700, 710))
    long.rename(short := long.with_name("003_UCR_Anomaly_sineC_400_700_900.txt"))
    with pytest.raises(bench_quality.SeriesNameError, match="the file has 800 rows"):
        bench_quality.load_series(bench_quality.parse_ucr_name(short))


def halves_of(names: list[str]) -> dict[str, str]:
    return bench_quality.split_halves([bench_quality.parse_ucr_name(Path(n)) for n in names])


def test_split_halves_alternates_recordings_and_keeps_variants_together() -> None:
    names = ["010_UCR_Anomaly_foo_100_200_210.txt", "004_UCR_Anomaly_baz_100_200_210.txt",
             "003_UCR_Anomaly_DISTORTEDfoo_100_200_210.txt", "002_UCR_Anomaly_bar_100_200_210.txt",
             "005_UCR_Anomaly_NOISEbar_100_200_210.txt", "007_UCR_Anomaly_qux_100_200_210.txt"]
    # recordings by first number: bar (002) A, foo (003) B, baz (004) A, qux (007) B
    expected = {"002_bar": "A", "005_NOISEbar": "A", "003_DISTORTEDfoo": "B", "010_foo": "B", "004_baz": "A",
                "007_qux": "B"}
    assert halves_of(names) == expected
    assert halves_of(names[::-1]) == expected  # the order of the files does not matter


def test_split_halves_of_ucr_dev_is_the_documented_one() -> None:
    folder = shared_data("ucr-dev")
    found = bench_quality.ucr_files([folder])
    assert len(found) == 40
    halves = bench_quality.split_halves(found)
    in_a = {s.number for s in found if halves[s.name] == "A"}
    assert in_a == UCR_DEV_HALF_A
    assert sum(h == "B" for h in halves.values()) == 21
    for recording in {s.recording for s in found}:  # no recording straddles the halves
        assert len({halves[s.name] for s in found if s.recording == recording}) == 1
    # 007 (DISTORTED) and 115 are one recording, CIMIS44AirTemperature3; 021, 097 (NOISE) and 129 another
    by_number = {s.number: halves[s.name] for s in found}
    assert by_number[7] == by_number[115] == "B" and by_number[21] == by_number[97] == by_number[129] == "B"


@pytest.mark.slow
def test_bench_quality_rejects_a_seed_among_the_hyperparameters() -> None:
    done = subprocess.run([sys.executable, "scripts/bench_quality.py", "--no-peer", "--hyperparameters", "seed=3"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "--seeds" in done.stderr


def peer_python() -> Path:
    """The peers' python (the venv completed if it lacks a package), or skip the test with the reason."""
    python = tsb_ad_peer.venv_python(tsb_ad_peer.peer_venv())
    if not python.exists():
        pytest.skip(f"{python} is absent: `python scripts/tsb_ad_peer.py build` builds the peers' venv (needs "
                    "PyPI; CI does it, in LSTM_AD_PEER_VENV)")
    return tsb_ad_peer.ensure_venv(tsb_ad_peer.peer_venv())


@pytest.mark.slow
@pytest.mark.parametrize(("peer", "normalisation"), [("lstmad", "none"), ("lstmad", "upstream"), ("subpca", "none"),
                                                     ("mp-ab", "none"), ("mp-self", "none")])
def test_tsb_ad_peer_scores_the_test_rows_and_finds_a_plain_spike(peer: str, normalisation: str, tmp_path: Path
                                                                  ) -> None:
    python = peer_python()
    path = write_ucr_series(tmp_path, "001", "sine", rows=1200, train_end=700, anomaly=(950, 960))
    series = bench_quality.parse_ucr_name(path)
    result = bench_quality.run_peer(peer, python, series, 0, tmp_path / "scores.npy", normalisation)
    scores = np.load(tmp_path / "scores.npy")
    assert scores.shape == (1200 - 700,) and np.isfinite(scores).all()
    assert result.hit == 1 and 850 <= result.row <= 1060, result
    assert 0.0 < result.aucpr <= 1.0 and result.seconds > 0


def znormalised_profile(queries: np.ndarray, references: np.ndarray, window: int, exclusion: int | None = None
                        ) -> np.ndarray:
    """Slow reference: each query subsequence's z-normalised Euclidean distance to its nearest reference
    subsequence (by start row), skipping references whose start is within `exclusion` of the query's (a self-join)."""
    def subsequences(x: np.ndarray) -> np.ndarray:
        s = np.lib.stride_tricks.sliding_window_view(x, window)
        return (s - s.mean(axis=1, keepdims=True)) / s.std(axis=1, keepdims=True)

    a, b = subsequences(queries), subsequences(references)
    distances = np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2), 0.0))
    if exclusion is not None:
        starts = np.arange(len(a))
        distances[np.abs(starts[:, None] - starts[None, :]) <= exclusion] = np.inf
    return distances.min(axis=1)


@pytest.mark.slow
@pytest.mark.parametrize("peer", ["mp-ab", "mp-self"])
def test_matrix_profile_peers_score_each_row_with_its_centred_subsequence_against_a_slow_reference(
        peer: str, tmp_path: Path) -> None:
    rows, train_end, window = 400, 250, 24
    values = np.sin(2 * np.pi * np.arange(rows) / 24) + 0.1 * np.random.default_rng(5).standard_normal(rows)
    series_file = tmp_path / "series.txt"
    np.savetxt(series_file, values, fmt="%.17g")
    scores_file, _ = tsb_ad_peer.run_peer(peer_python(), peer, series_file, train_end, 0, tmp_path / "s.npy",
                                          "none", window)
    scores = np.load(scores_file)
    assert scores.shape == (rows - train_end,)
    if peer == "mp-ab":  # test subsequences against training ones
        profile, first = znormalised_profile(values[train_end:], values[:train_end], window), train_end
    else:  # the whole series against itself, stumpy's default exclusion zone ceil(m / 4)
        profile, first = znormalised_profile(values, values, window, exclusion=int(np.ceil(window / 4))), 0
    expected = np.full(rows, profile.min())  # rows without a centred subsequence: the lowest value
    centre = first + (window - 1) // 2
    expected[centre:centre + len(profile)] = profile
    np.testing.assert_allclose(scores, expected[train_end:], rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_matrix_profile_peers_find_the_anomaly_of_a_short_ucr_series(tmp_path: Path) -> None:
    path = shared_data("ucr-dev", "024_UCR_Anomaly_DISTORTEDInternalBleeding10_3200_4526_4556.txt")
    python = peer_python()
    series = bench_quality.parse_ucr_name(path)
    assert bench_quality.peer_window(bench_quality.load_series(series)[:series.train_end]) == 154
    for peer in ("mp-ab", "mp-self"):
        result = bench_quality.run_peer(peer, python, series, 0, tmp_path / f"{peer}.npy")
        assert np.load(tmp_path / f"{peer}.npy").shape == (7501 - 3200,)
        assert result.window == 154 and result.hit == 1 and 4426 <= result.row <= 4656, (peer, result)
        assert 0.0 < result.aucpr <= 1.0 and not result.skipped


@pytest.mark.slow
def test_bench_quality_peers_only_runs_no_model_and_names_the_series_a_peer_skipped(tmp_path: Path) -> None:
    peer_python()
    write_ucr_series(tmp_path / "mine", "001", "sineA")
    write_ucr_series(tmp_path / "mine", "002", "sineB", rows=3000)
    out = tmp_path / "peers.csv"
    # mp-self: 002 has 2,961 x 2,960 / 2 subsequence pairs (window 40), 001 673,380: the cap skips 002 only
    printed = run_script("scripts/bench_quality.py", str(tmp_path / "mine"), "--peers", "mp-ab,mp-self",
                         "--peers-only", "--mp-max-pairs", "2e6", "--work", str(tmp_path / "work"), "--out", str(out))
    header = next(line for line in printed.splitlines() if line.startswith("series")).split()
    assert "ours_hit" not in header and "mp_ab_hit" in header and "mp_self_hit" in header and "mp_window" in header
    assert not (tmp_path / "work" / "001_sineA" / "seed-0" / "model").exists()  # ours was not trained
    with out.open() as f:
        saved = {r["series"]: r for r in csv.DictReader(f)}
    assert list(saved) == ["001_sineA", "002_sineB"]  # one row per series: no seeded peer
    assert saved["001_sineA"]["mp_window"] == "40" and saved["001_sineA"]["ours_hit"] == "-1"
    assert saved["001_sineA"]["mp_self_hit"] == "1" and saved["002_sineB"]["mp_self_hit"] == "-1"
    assert saved["002_sineB"]["mp_ab_hit"] in ("0", "1")  # 2,361 x 561 pairs: under the cap
    totals = json.loads(next(line for line in printed.splitlines() if line.startswith("totals:"))[len("totals:"):])
    assert "ours" not in totals
    assert totals["mp-self"]["not_run"] == ["002_sineB"] and totals["mp-self"]["ran"] == 1
    assert totals["mp-self"]["accuracy"] == 1.0 and totals["mp-ab"]["not_run"] == []
    assert "mp-self: NOT RUN on 1 series" in printed and "half A" in printed


def test_peer_window_is_our_discord_period_of_the_training_part() -> None:
    train = np.sin(2 * np.pi * np.arange(5000) / 73)[:, None] * 3 + 10
    assert bench_quality.peer_window(train) == 73
    assert bench_quality.peer_window(train[:900]) == 73  # a short part: no lag wraps round the FFT
    flat = np.zeros((500, 1))  # no period: the default context-length
    assert bench_quality.peer_window(flat) == bench_quality.Hyperparameters().context_length


def test_matrix_profile_pairs_count_the_subsequences_compared() -> None:
    assert bench_quality.matrix_profile_pairs("mp-ab", 100, 60, 10) == (100 - 60 - 9) * (60 - 9)
    assert bench_quality.matrix_profile_pairs("mp-self", 100, 60, 10) == 91 * 90 // 2
    assert bench_quality.matrix_profile_pairs("mp-ab", 100, 95, 10) == 0


def test_peers_only_needs_a_peer() -> None:
    with pytest.raises(SystemExit):
        bench_quality.parse_args(["--peers-only", "--no-peer"])
    args = bench_quality.parse_args(["--peers-only", "--peers", "mp-ab,mp-self"])
    assert args.peers == ["mp-ab", "mp-self"] and args.peers_only


@pytest.mark.slow
def test_bench_quality_rejects_an_unknown_hyperparameter_with_the_products_message() -> None:
    shared_data("ucr-dev")
    done = subprocess.run([sys.executable, "scripts/bench_quality.py", "--no-peer", "--no-smd",
                           "--hyperparameters", "hiden-size=4"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode != 0
    assert "hiden-size" in done.stderr


@pytest.mark.slow
def test_bench_speed_quick_prints_training_and_scoring_rows() -> None:
    printed = run_script("scripts/bench_speed.py", "--quick", "--epochs", "1", "--threads", "1")
    table = {line.split("  ")[0].strip(): line for line in printed.splitlines()}
    for name in ("ours train wall", "ours train throughput", "reference train wall",
                 "speed-up over reference", "score 32000 rows throughput", "peak memory (ru_maxrss)"):
        assert name in table, printed
    assert "x 1830 windows of 100 + 10 rows" in table["epochs"]
    assert float(table["ours train wall"].split()[3]) > 0


@pytest.mark.slow
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
    swept = ucr["alarm_fraction_sweep"]["0.001"]
    assert 0.0 <= swept["median_false_alarm_rate"] <= 1.0 and swept["found"] in (0, 1)
    assert [line.split(" | ")[0] for line in printed.splitlines() if " | " in line][1:] == [
        "0.0001", "0.0005", "0.001", "0.002", "0.005", "0.01", "0.02"]  # the rate table, one line per fraction


def test_totals_count_a_seeded_peer_only_at_the_seeds_it_ran() -> None:
    """--peer-seeds 0: the peer's accuracy is over seed 0's rows, not diluted by the seeds where it did not run."""
    def row(series: str, seed: int, half: str, ours: int, peer: int | None) -> bench_quality.Row:
        found = bench_quality.Row(series, seed, half, 100, 50, "60-61", ours_hit=ours, ours_aucpr=0.5,
                                  ours_train_s=1.0)
        if peer is not None:
            found.lstmad_hit, found.lstmad_aucpr, found.lstmad_s = peer, 0.25, 2.0
        return found

    rows = [row("001_a", 0, "A", 1, 1), row("002_b", 0, "B", 0, 1),
            row("001_a", 1, "A", 0, None), row("002_b", 1, "B", 0, None)]
    found = bench_quality.totals(rows, [0, 1], ["lstmad"], peer_seeds=[0])
    assert found["ours"]["per_seed"]["0"]["accuracy"] == 0.5 and found["ours"]["per_seed"]["1"]["accuracy"] == 0.0
    assert found["ours"]["accuracy"] == 0.25
    assert list(found["lstmad"]["per_seed"]) == ["0"]
    assert found["lstmad"]["accuracy"] == 1.0 and found["lstmad"]["s"]["total"] == 4.0


@pytest.mark.slow
def test_bench_distributed_prints_throughput_of_threads_and_ddp_with_the_ratios() -> None:
    printed = run_script("scripts/bench_distributed.py", "--epochs", "2", "--rounds", "1")
    for name in ("threads x1", "threads x2", "DDP x1", "DDP x2"):
        row = next(line for line in printed.splitlines() if line.startswith(name))
        assert float(row.split()[2]) > 0, printed
    assert "ratio DDP x2 / threads x2: " in printed


@pytest.mark.slow
def test_bench_startup_prints_the_optimiser_and_final_pass_figures_with_their_references() -> None:
    printed = run_script("scripts/bench_startup.py", "--repeat", "1")
    assert "torch.optim.Adam" in printed and "lstm_ad.adam.Adam" in printed, printed
    for case in ("200 files x 40 rows", "1 file x 8,000 rows"):
        line = next(line for line in printed.splitlines() if line.startswith(case))
        assert "final passes" in line and "1 thread" in line and "ratio" in line, line


@pytest.mark.slow
def test_bench_stop_stops_train_after_its_first_epoch_and_finds_the_model(tmp_path: Path) -> None:
    printed = run_script("scripts/bench_stop.py", "--cases", "1", "--scale", "0.002", "--data", str(tmp_path))
    row = next(line for line in printed.splitlines() if line.startswith("| 5M x 1, defaults |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "0" and float(cells[2]) > 0 and cells[4] == "yes", printed
