"""The vectorised CSV writer against Python's own '%.9g' formatting."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_ad.sagemaker.csv_format import BLOCK_ROWS, format_rows


def reference(columns: list[np.ndarray]) -> str:
    lines = (",".join(format(v, ".9g") if np.isfinite(v) else "" for v in row) for row in zip(*columns, strict=True))
    return "".join(line + "\n" for line in lines)


EDGES = [0.0, 1.0, -1.0, 10.0, 0.1, 9.9999999999, 99999.99999999, 0.0001, 0.00099999999999, 0.000099999, 1e9,
         999999999.7, 123456789.0, 100000000.0, -5.5, 1e-5, 1e-300, 1e300, 5e-324, 1.7976931348623157e308,
         2.5, 0.5, 1234.5, 1e16, -0.000123456789]


@pytest.mark.parametrize("values", [
    np.array(EDGES),
    np.random.default_rng(0).standard_normal(5000),
    np.random.default_rng(1).standard_normal(5000) * 10.0 ** np.random.default_rng(2).integers(-12, 14, 5000),
    np.random.default_rng(3).standard_normal(5000).astype(np.float32).astype(np.float64) * 1000,
], ids=["edges", "normal", "magnitudes", "float32"])
def test_numbers_are_written_as_percent_9g(values: np.ndarray) -> None:
    assert format_rows([values]).decode() == reference([values])


def test_nan_and_infinity_are_empty_fields_and_rows_stay_aligned() -> None:
    log_likelihood = np.array([np.nan, np.nan, -1.25, 3.0])
    first = np.array([np.nan, np.nan, 0.5, -np.inf])
    second = np.array([np.nan, np.nan, 7.0, 1e-7])
    assert format_rows([log_likelihood, first, second]) == b",,\n,,\n-1.25,0.5,7\n3,,1e-07\n"


def test_many_rows_cross_block_boundaries_in_order() -> None:
    rows = 2 * BLOCK_ROWS + 17
    values = np.arange(rows, dtype=np.float64) / 8
    lines = format_rows([values, -values]).decode().splitlines()
    assert len(lines) == rows
    assert lines[BLOCK_ROWS] == f"{BLOCK_ROWS / 8:.9g},{-BLOCK_ROWS / 8:.9g}"
    assert lines[-1] == f"{(rows - 1) / 8:.9g},{-(rows - 1) / 8:.9g}"


def test_no_rows_is_an_empty_answer() -> None:
    assert format_rows([np.array([]), np.array([])]) == b""
