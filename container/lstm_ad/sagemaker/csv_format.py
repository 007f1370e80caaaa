"""Fast CSV output: scores as text, vectorised with numpy (no Python loop per row).

A 1,000,000-row answer has 2,000,000 numbers; Python's `repr` or numpy's own
float-to-string conversion (~1 µs per number) would take longer than the model. So
numbers are written with 9 significant digits, exactly as `'%.9g' % x` writes them
(9 digits represent every float32 exactly, and the network computes in float32):
the digits come from integer arithmetic on whole columns, and characters are laid
out in a fixed-width byte matrix whose unused cells (NUL) are dropped at the end.
NaN becomes an empty field, which is how warm-up rows are written (`,,`).
Rare numbers outside %g's positional range (|x| < 1e-4 or >= 1e9) use `'%.9g'`.
"""

from __future__ import annotations

import numpy as np

SIGNIFICANT = 9
WIDTH = 16  # sign, up to 5 leading "0.000", 9 digits, point: the widest positional form
BLOCK_ROWS = 1 << 16  # rows formatted at once: bounds the byte matrices' memory
_ZERO, _POINT, _MINUS = ord("0"), ord("."), ord("-")
_POWERS = 10 ** np.arange(SIGNIFICANT - 1, -1, -1, dtype=np.int64)  # 10^8 ... 10^0


def format_rows(columns: list[np.ndarray]) -> bytes:
    """CSV text of `columns` (each (rows,) float), one line per row, NaN as empty field."""
    rows = len(columns[0]) if columns else 0
    parts = [_format_block([c[start:start + BLOCK_ROWS] for c in columns])
             for start in range(0, rows, BLOCK_ROWS)]
    return b"".join(parts)


def _format_block(columns: list[np.ndarray]) -> bytes:
    fields = [_field_matrix(np.asarray(c, dtype=np.float64)) for c in columns]
    separators = np.full((len(columns[0]), len(columns)), ord(","), dtype=np.uint8)
    separators[:, -1] = ord("\n")
    pieces: list[np.ndarray] = []
    for i, field in enumerate(fields):
        pieces += [field, separators[:, i:i + 1]]
    matrix = np.concatenate(pieces, axis=1)  # (rows, columns * (WIDTH + 1))
    return matrix[matrix != 0].tobytes()  # row-major order keeps rows and fields in sequence


def _field_matrix(values: np.ndarray) -> np.ndarray:
    """(n,) float64 -> (n, WIDTH) bytes of '%.9g' text, NUL-padded; NaN -> all NUL."""
    out = np.zeros((len(values), WIDTH), dtype=np.uint8)
    finite = np.isfinite(values)
    magnitude = np.abs(np.where(finite, values, 0.0))
    exponent, mantissa = _decompose(magnitude)
    nonzero = finite & (magnitude != 0)
    positional = nonzero & (exponent >= -4) & (exponent < SIGNIFICANT)
    digits = _digits(mantissa)
    kept = SIGNIFICANT - (digits[:, ::-1] != 0).argmax(axis=1)  # digits up to the last non-zero one
    for exp in np.unique(exponent[positional]).tolist():  # a handful of exponents per block
        rows = np.flatnonzero(positional & (exponent == exp))
        out[rows] = _positional_block(digits[rows], kept[rows], exp)
    out[positional & (values < 0), 0] = _MINUS
    out[finite & (magnitude == 0), 0] = _ZERO
    for i in np.flatnonzero(nonzero & ~positional).tolist():  # rare: tiny or huge numbers
        text = (f"%.{SIGNIFICANT}g" % values[i]).encode()
        out[i, :len(text)] = np.frombuffer(text, dtype=np.uint8)
    return out


def _positional_block(digits: np.ndarray, kept: np.ndarray, exp: int) -> np.ndarray:
    """Rows sharing exponent `exp` -> (rows, WIDTH) text after a sign cell: '123.45', '0.00123'."""
    lead = max(-exp, 0)  # zeros before the first digit: '0.00ddd' for exp = -3
    point = max(exp, 0) + 1  # characters of the digit string before the point
    string = np.zeros((len(digits), lead + SIGNIFICANT), dtype=np.uint8)
    string[:, lead:] = digits
    string += _ZERO
    block = np.zeros((len(digits), WIDTH), dtype=np.uint8)
    block[:, 1:1 + point] = string[:, :point]
    block[:, 1 + point] = _POINT
    block[:, 2 + point:2 + string.shape[1]] = string[:, point:]
    # Drop trailing zeros after the point, and the point itself when nothing follows it.
    last = lead + kept  # characters of the digit string to keep (at least the integer part)
    last_column = np.where(last > point, 1 + last, point)
    block[np.arange(WIDTH)[None, :] > last_column[:, None]] = 0
    return block


_POW10 = 10.0 ** np.arange(-300, 309)  # table lookup: far cheaper than a vectorised power


def _decompose(magnitude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|x| = mantissa * 10^(exponent - 8), mantissa an integer of exactly 9 digits (x != 0)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        exponent = np.floor(np.log10(np.where(magnitude > 0, magnitude, 1.0))).astype(np.int64)
        exponent = np.clip(exponent, -300, 300)
        mantissa = _scaled(magnitude, exponent)
        # log10 can be off by one next to powers of ten, and rounding can carry to 10^9.
        low = (mantissa < _POWERS[0]) & (magnitude > 0)
        exponent[low] -= 1
        mantissa[low] = _scaled(magnitude[low], exponent[low])
        high = mantissa >= 10 * _POWERS[0]
        exponent[high] += 1
        mantissa[high] = _scaled(magnitude[high], exponent[high])
    return exponent, mantissa


def _scaled(magnitude: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    index = np.clip(SIGNIFICANT - 1 - exponent + 300, 0, len(_POW10) - 1)  # extremes use the fallback
    return np.rint(magnitude * _POW10[index]).astype(np.int64)


def _digits(mantissa: np.ndarray) -> np.ndarray:
    """(n,) integers below 10^9 -> (n, 9) uint8 decimal digits, most significant first."""
    digits = np.empty((len(mantissa), SIGNIFICANT), dtype=np.uint8)
    rest = mantissa.astype(np.uint32)  # 32-bit division by a constant is several times faster
    ten = np.uint32(10)
    for k in range(SIGNIFICANT - 1, -1, -1):
        quotient = rest // ten
        digits[:, k] = rest - quotient * ten
        rest = quotient
    return digits
