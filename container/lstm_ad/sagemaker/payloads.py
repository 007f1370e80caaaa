"""Request bodies in, response bodies out: CSV (the default) and JSON.

CSV request: the training layout (no header, one column per variable, one row per
time step). CSV response: one line per request row, `score,pred_1,...,pred_d`,
with empty fields for the warm-up rows (`,,` for two columns).

JSON request: `{"values": [[x_11, ..., x_1d], ...]}` (or the bare list of rows; null for a
missing value, as an empty cell in CSV), optionally
with `"output": ["alarm", "attribution"]` (see outputs.py).
JSON response: `{"log_likelihood": [...], "predictions": [[...], ...]}`, one entry per
request row, `null` for warm-up rows, numbers at full float64 precision. The key `log_likelihood`
holds the score (ScoreResult.score): it is the public listing's name, kept for its users' code.

Optional outputs (outputs.py) add columns after the default ones, empty for warm-up rows like
them: CSV `score,pred_1..pred_d[,alarm][,attr_1..attr_d]`; JSON the keys "alarm" (0/1) and
"attribution" (one list of d numbers per row).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from ..data import parse_csv
from ..errors import DataError, excerpt
from ..predictor import ScoreResult
from .csv_format import format_rows
from .outputs import parse_outputs

CSV, JSON = "text/csv", "application/json"
SOURCE = "request body"
SCORE_KEY = "log_likelihood"  # the score's key in a JSON answer: the listing's name


def decode_csv(body: bytes, columns: int | None = None) -> np.ndarray:
    """CSV bytes -> (rows, columns) float64, or a DataError naming the line and column."""
    return parse_csv(body, SOURCE, columns)


def decode_csv_request(body: bytes, columns: int | None = None) -> tuple[np.ndarray, frozenset[str] | None]:
    """(values, None): a CSV body cannot ask for outputs."""
    return decode_csv(body, columns), None


def decode_json_request(body: bytes, columns: int | None = None) -> tuple[np.ndarray, frozenset[str] | None]:
    """(values, the outputs its "output" field asks for, or None without one)."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise DataError(f"{SOURCE}: is not valid JSON ({excerpt(str(exc))}).") from None
    except RecursionError:
        raise DataError(f"{SOURCE}: is nested too deeply to be a list of rows.") from None
    rows = document.get("values") if isinstance(document, dict) else document
    outputs = None
    if isinstance(document, dict) and "output" in document:
        requested = document["output"]
        if not isinstance(requested, (str, list)):
            raise DataError(f'{SOURCE}: "output" must be a list of names or a comma-separated string, got '
                            f"{excerpt(json.dumps(requested))}.")
        outputs = parse_outputs(requested, f'{SOURCE}, "output"')
    if not isinstance(rows, list) or not rows:
        raise DataError(f'{SOURCE}: expected {{"values": [[x_1, ..., x_d], ...]}}, one list of numbers per '
                        "time step.")
    width = len(rows[0]) if isinstance(rows[0], list) else -1
    if columns is not None and width not in (-1, columns):
        raise DataError(f"{SOURCE}, row 1: got {width} columns, expected {columns} columns (as in training). "
                        "Send the same variables, in the same order, as in training.")
    for row_no, row in enumerate(rows, start=1):
        if not isinstance(row, list) or len(row) != width or not row:
            raise DataError(f"{SOURCE}, row {row_no}: expected a list of {max(width, 1)} numbers like row 1, "
                            f"got {excerpt(json.dumps(row))}. Every row must have the same number of values.")
        for col_no, cell in enumerate(row, start=1):
            if cell is not None and not _finite_number(cell):
                raise DataError(f"{SOURCE}, row {row_no}, column {col_no}: {excerpt(json.dumps(cell))} is not a "
                                "finite number. Every value must be a number within the float64 range, or null "
                                "when it is missing.")
    return np.array(rows, dtype=np.float64), outputs


def _finite_number(cell: Any) -> bool:
    if isinstance(cell, bool) or not isinstance(cell, (int, float)):
        return False
    try:
        return math.isfinite(cell)
    except OverflowError:  # an integer beyond the float range, e.g. 10**400
        return False


def encode_csv(result: ScoreResult) -> bytes:
    columns = [result.score] + [result.predictions[:, j] for j in range(result.predictions.shape[1])]
    if result.alarm is not None:
        columns.append(result.alarm)
    if result.attribution is not None:
        columns += [result.attribution[:, j] for j in range(result.attribution.shape[1])]
    return format_rows(columns)


def encode_json(result: ScoreResult) -> bytes:
    def listed(values: np.ndarray) -> list[Any]:
        cells = values.astype(object)
        cells[~np.isfinite(values)] = None
        listed_cells: list[Any] = cells.tolist()
        return listed_cells

    document = {SCORE_KEY: listed(result.score), "predictions": listed(result.predictions)}
    if result.alarm is not None:
        document["alarm"] = [None if math.isnan(a) else int(a) for a in result.alarm.tolist()]
    if result.attribution is not None:
        document["attribution"] = listed(result.attribution)
    return json.dumps(document).encode()


DECODERS = {CSV: decode_csv_request, JSON: decode_json_request}
ENCODERS = {CSV: encode_csv, JSON: encode_json}
