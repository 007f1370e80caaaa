"""Reading time series from CSV and scaling them.

A series is a CSV table without header or index: one row per time step, one column
per variable. Good input takes the fast path (pandas' C parser); anything it cannot
read cleanly is re-read line by line to find the first bad line and cell, so every
error names the file, line and column and says how to fix it.

An empty cell is a missing value and reads as NaN; text such as `nan`, `NA` or `inf` is
refused (ambiguous: was it measured?). A line with only commas is a row with nothing
observed; a blank line is skipped (so a one-column CSV cannot mark a gap with an empty
line: send such series as JSON with null).
"""

from __future__ import annotations

import gzip
import io
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError, excerpt


@dataclass(frozen=True)
class Series:
    """One independent time series: `values` has shape (rows, columns)."""

    name: str
    values: np.ndarray


# A plain decimal number as the fast path reads it; Python's float() also takes "1_000" and
# full-width digits, which the fast path refuses, so the scan checks cells with this instead.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


def parse_csv(content: str | bytes, source: str, columns: int | None = None) -> np.ndarray:
    """CSV text or UTF-8 bytes -> float64 array (rows, columns); `source` names it in errors.

    With `columns`, the first line's column count is checked before anything else is parsed, so a
    request of the wrong width is refused at once, however wide it is.
    """
    if not content.strip():
        raise DataError(f"{source} is empty: expected CSV rows of numbers, one row per time step.")
    if columns is not None:
        _check_first_line_width(content, source, columns)
    buffer = io.BytesIO(content) if isinstance(content, bytes) else io.StringIO(content)
    try:  # fast path: bytes go straight to the C parser, no str copy of a large body
        frame = pd.read_csv(buffer, header=None, dtype=np.float64, engine="c",
                            skip_blank_lines=True, na_filter=True)
        values = frame.to_numpy(dtype=np.float64, copy=False)
    except (ValueError, pd.errors.ParserError):  # UnicodeDecodeError is a ValueError too
        values = None
    if values is None or not np.isfinite(values).all():
        # NaN may be empty cells (missing values, fine) or text such as "nan" (refused): the scan tells.
        _raise_first_problem(_as_text(content, source), source)
        if values is None or np.isinf(values).any():
            raise DataError(f"{source} could not be read as CSV numbers.")  # the scan found nothing to name
    return np.ascontiguousarray(values)


def _check_first_line_width(content: str | bytes, source: str, columns: int) -> None:
    text = content[:1 << 20].decode("utf-8", "replace") if isinstance(content, bytes) else content[:1 << 20]
    lines = text.splitlines()
    first = next((line for line in lines[:-1] if line.strip()), lines[-1] if lines else "")
    found = first.count(",") + 1
    if found != columns:
        _check_separator(first, f"{source}, line 1")
        raise DataError(f"{source}, line 1: got {found} columns, expected {columns} columns (as in training). "
                        "Send the same variables, in the same column order, as in training.")


def _as_text(content: str | bytes, source: str) -> str:
    if isinstance(content, str):
        return content
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{source}: is not UTF-8 text (byte {exc.start}). Provide CSV text.") from None


def _raise_first_problem(text: str, source: str) -> None:
    """Find the first bad line/cell of `text` and raise a DataError naming it.

    The input has no quoting (numbers only), so lines are split on commas directly: unlike the csv
    module, this has no field-size limit to trip over.
    """
    expected: int | None = None
    for line_no, line in enumerate(text.splitlines(), start=1):
        row = line.split(",")
        if all(not cell.strip() for cell in row):
            continue  # blank lines are skipped, as on the fast path
        if expected is None:
            expected = len(row)
        elif len(row) != expected:
            _check_separator(line, f"{source}, line {line_no}")
            raise DataError(
                f"{source}, line {line_no}: has {len(row)} columns but line 1 has {expected}. "
                "Every row must have the same number of comma-separated values."
            )
        for col_no, cell in enumerate(row, start=1):
            _check_cell(cell.strip(), f"{source}, line {line_no}, column {col_no}", line_no == 1)


def _check_separator(text: str, where: str) -> None:
    """Semicolon- or tab-separated input reads as one wide, non-numeric cell: say what it really is."""
    for separator, name in ((";", "semicolon"), ("\t", "tab")):
        if separator in text:
            raise DataError(f"{where}: {excerpt(text)} holds a {name}: the data looks {name}-separated. "
                            "Use commas between values (CSV), with no header and no index column.")


def _check_cell(cell: str, where: str, first_line: bool) -> None:
    if not cell:
        return  # a missing value
    if _NON_FINITE.fullmatch(cell) or (_NUMBER.fullmatch(cell) and not math.isfinite(float(cell))):
        raise DataError(f"{where}: {excerpt(cell)} is not a finite number (NaN or infinity, or beyond "
                        "the float64 range). Leave a missing value's cell empty; replace infinite values.")
    if _NUMBER.fullmatch(cell):
        return
    _check_separator(cell, where)
    if first_line and any(ch.isalpha() for ch in cell):
        raise DataError(f"{where}: {excerpt(cell)} is not a number; this looks like a header row. "
                        "Remove the header: the input must be CSV without header or index column.")
    raise DataError(f"{where}: {excerpt(cell)} is not a number. Every cell must be a plain decimal number "
                    "(digits 0-9 with an optional sign, decimal point and exponent, e.g. -1.25e-3).")


def read_series_file(path: Path) -> np.ndarray:
    """Read one CSV (optionally gzip-compressed) file into (rows, columns) float64."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot be read ({exc}). Provide plain or gzip-compressed CSV.") from exc
    return parse_csv(raw, str(path))


def list_channel_files(folder: Path) -> list[Path]:
    """Every regular file below `folder` (SageMaker keeps the S3 key structure), sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def read_channel(folder: Path, channel: str) -> list[Series]:
    """Read every file of a channel as an independent series; all must have the same columns."""
    files = list_channel_files(folder) if folder.is_dir() else []
    if not files:
        raise DataError(f"The `{channel}` channel ({folder}) has no files. Provide at least one CSV "
                        "file: no header, one column per variable, one row per time step.")
    series = [Series(str(path), read_series_file(path)) for path in files]
    check_same_columns(series)
    return series


def check_same_columns(series: list[Series], expected: int | None = None, expected_from: str = "") -> None:
    """All series must have the same number of columns (and `expected` if given)."""
    if expected is None:
        expected, expected_from = series[0].values.shape[1], series[0].name
    for s in series:
        if s.values.shape[1] != expected:
            raise DataError(
                f"{s.name}: has {s.values.shape[1]} columns but {expected_from} has {expected}. "
                "All series must have the same variables in the same column order."
            )


# Training standard deviations from the training mean beyond which standardised inputs are clipped.
MAX_STANDARDISED = 1e4


def clipped(standardised: np.ndarray) -> np.ndarray:
    """Standardised values clipped to +-MAX_STANDARDISED, as requests and validation series are scored: a
    value far beyond anything seen in training (1e308, say) stays a finite, extreme input instead of
    overflowing the network's float32 arithmetic into an empty score."""
    return np.clip(standardised, -MAX_STANDARDISED, MAX_STANDARDISED)


@dataclass(frozen=True)
class Scaler:
    """Per-column standardisation; a constant column gets std 1 so it stays finite. Missing values (NaN)
    are left out of the mean and spread, and stay NaN."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, parts: list[np.ndarray]) -> Scaler:
        stacked = np.concatenate(parts, axis=0)
        gaps = np.isnan(stacked).any()
        # An overflow gives inf, and a column with no value NaN: the caller reports either per column.
        with np.errstate(over="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of an all-NaN column
            mean = np.nanmean(stacked, axis=0) if gaps else stacked.mean(axis=0)
            std = np.nanstd(stacked, axis=0) if gaps else stacked.std(axis=0)
        return cls.from_moments(mean, std)

    @classmethod
    def from_moments(cls, mean: np.ndarray, std: np.ndarray) -> Scaler:
        """The scaler of columns with this mean and (population) standard deviation; a constant column gets 1."""
        std = np.where(std > 1e-12 * np.maximum(np.abs(mean), 1.0), std, 1.0)
        return cls(mean=mean, std=std)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return values * self.std + self.mean

    def to_json(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, list[float]]) -> Scaler:
        return cls(mean=np.asarray(data["mean"], dtype=np.float64),
                   std=np.asarray(data["std"], dtype=np.float64))
