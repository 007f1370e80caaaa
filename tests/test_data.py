"""CSV reading and validation: every bad input is named by file, line and column."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from lstm_ad.data import Scaler, parse_csv, read_channel, read_series_file
from lstm_ad.errors import DataError


def test_parses_good_csv_exactly():
    values = parse_csv("1,2\n3.5,-4e-3\n\n5,6\n", "x.csv")
    np.testing.assert_array_equal(values, [[1, 2], [3.5, -0.004], [5, 6]])
    assert values.dtype == np.float64 and values.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b\n1,2\n", r"x\.csv, line 1, column 1: 'a' is not a number; this looks like a header row"),
        ("1,2\n3,oops\n", r"x\.csv, line 2, column 2: 'oops' is not a number"),
        ("1,2\n3,nan\n", r"x\.csv, line 2, column 2: 'nan' is not a finite number"),
        ("1,2\n3,inf\n", r"x\.csv, line 2, column 2: 'inf' is not a finite number"),
        ("1,2\n3,-Infinity\n", r"x\.csv, line 2, column 2: '-Infinity' is not a finite number"),
        ("1,2\n3,2,1\n", r"x\.csv, line 2: has 3 columns but line 1 has 2"),
        ("1,2\n3\n5,6\n", r"x\.csv, line 2: has 1 columns but line 1 has 2"),
        ("1,2\n3,nan\n", r"x\.csv, line 2, column 2: 'nan' is not a finite number.*Leave a missing value's cell empty"),
        ("1,2\n3,NA\n", r"x\.csv, line 2, column 2: 'NA' is not a number"),
        ("", r"x\.csv is empty"),
        ("\n  \n", r"x\.csv is empty"),
    ],
)
def test_bad_input_is_named_precisely(text, message):
    with pytest.raises(DataError, match=message):
        parse_csv(text, "x.csv")


def test_reads_gzip_whatever_the_name(tmp_path: Path):
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(b"1,2\n3,4\n"))
    (tmp_path / "b.csv").write_bytes(gzip.compress(b"5,6\n"))
    np.testing.assert_array_equal(read_series_file(tmp_path / "a.csv.gz"), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(read_series_file(tmp_path / "b.csv"), [[5, 6]])


def test_binary_file_is_rejected_with_its_name(tmp_path: Path):
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1\xff\xfe\x00")
    with pytest.raises(DataError, match=r"data\.parquet: is not UTF-8 text"):
        read_series_file(path)


def test_channel_reads_every_file_as_a_series_in_name_order(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.csv").write_text("1\n2\n")
    (tmp_path / "sub" / "c.csv").write_text("3\n")
    (tmp_path / "a.csv").write_text("0\n")
    (tmp_path / ".hidden").write_text("not data")
    series = read_channel(tmp_path, "training")
    assert [Path(s.name).name for s in series] == ["a.csv", "b.csv", "c.csv"]
    assert [len(s.values) for s in series] == [1, 2, 1]


def test_channel_needs_files(tmp_path: Path):
    with pytest.raises(DataError, match=r"The `training` channel .* has no files"):
        read_channel(tmp_path, "training")


def test_channel_files_must_agree_on_columns(tmp_path: Path):
    (tmp_path / "a.csv").write_text("1,2\n")
    (tmp_path / "b.csv").write_text("1,2,3\n")
    with pytest.raises(DataError, match=r"b\.csv: has 3 columns but .*a\.csv has 2"):
        read_channel(tmp_path, "training")


def test_scaler_standardises_and_inverts():
    rng = np.random.default_rng(1)
    parts = [rng.normal(5, 2, (100, 2)), rng.normal(5, 2, (50, 2))]
    scaler = Scaler.fit(parts)
    stacked = np.concatenate(parts)
    scaled = scaler.transform(stacked)
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(scaled.std(axis=0), 1, atol=1e-12)
    np.testing.assert_allclose(scaler.inverse(scaled), stacked)
    assert Scaler.from_json(scaler.to_json()).to_json() == scaler.to_json()


def test_constant_column_gets_unit_std():
    scaler = Scaler.fit([np.c_[np.full(10, 3.0), np.arange(10.0)]])
    assert scaler.std[0] == 1.0
    assert np.isfinite(scaler.transform(np.array([[3.0, 1.0]]))).all()


def test_empty_cells_are_missing_values():
    """An empty cell reads as NaN; a line of commas is a row with nothing observed; blank lines are skipped."""
    values = parse_csv("1,2\n3,\n,\n\n,4.5\n6,7\n", "x.csv")
    np.testing.assert_array_equal(values, [[1, 2], [3, np.nan], [np.nan, np.nan], [np.nan, 4.5], [6, 7]])
    assert np.isnan(parse_csv(b"1,,3\n4,5,6\n", "x.csv")[0, 1])
