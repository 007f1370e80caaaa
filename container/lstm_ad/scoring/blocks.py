"""Rows scored at once: long requests are scored in blocks of rows so that their temporaries stay a few MB.

A row's result never depends on the block it falls in (every computation is row by row), so the block
size is a memory bound only.
"""

from __future__ import annotations

ROWS_PER_BLOCK = 1 << 14


def row_blocks(rows: int) -> list[slice]:
    """Consecutive slices of at most ROWS_PER_BLOCK rows that cover `rows` rows."""
    return [slice(start, start + ROWS_PER_BLOCK) for start in range(0, rows, ROWS_PER_BLOCK)]
