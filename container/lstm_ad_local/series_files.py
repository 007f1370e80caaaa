"""Series longer than one request: split into files that overlap, join the answers.

Batch transform sends each file whole when SplitType is None, up to MaxPayloadInMB (at most
100 MB). A longer series is split into parts whose first `overlap` rows repeat the end of the part
before (`split_series`); every part is transformed as a file of its own, and `join_outputs` keeps
of each part only the rows that the part scores as one long request would, so the joined `.out` has
exactly one line per row of the series and warm-up rows only at its start.

The overlap a model needs is `overlap(context-length, score-window)` = context-length + score-window
- 1 rows. A row's score reads the rows of its score window, (w - 1) // 2 before and w // 2 after it
(lstm_ad/scoring/window.py), so a later part's first context-length + (w - 1) // 2 rows (warm-up, then rows
whose window reaches into it) and every part's last w // 2 rows but the last part's (windows cut by
the part's end) are left to the neighbouring part. The rows kept near a part's start are scored after
a warm-up, as every chunk of a long request is (lstm_ad/forecast.py), but on a different chunk grid:
their scores agree with those of a single request up to the network's sensitivity to its initial
state, not bit for bit.
"""

from __future__ import annotations

from pathlib import Path

from lstm_ad.scoring.window import rows_around

from .errors import LocalJobError

PART_NAME = "part-{:05d}.csv"


def overlap(context_length: int, score_window: int) -> int:
    """Rows a part must repeat from the one before for its later rows to score as in one request."""
    return context_length + score_window - 1


def split_series(series: Path, output_dir: Path, rows_per_part: int, overlap: int) -> list[Path]:
    """Write `series` as parts of at most `rows_per_part` rows, each after the first starting with the
    last `overlap` rows of the one before. Returns the part files in order."""
    if rows_per_part <= overlap:
        raise LocalJobError(f"rows per part ({rows_per_part}) must exceed the overlap ({overlap} rows: "
                            "context-length + score-window - 1): each part repeats that many rows of the one before.")
    lines = [line.rstrip(b"\r\n") + b"\n" for line in series.read_bytes().splitlines() if line.strip()]
    if not lines:
        raise LocalJobError(f"{series} holds no rows.")
    output_dir.mkdir(parents=True, exist_ok=True)
    parts: list[Path] = []
    end = 0  # the first row that no part holds yet
    while end < len(lines):
        begin = end - overlap if parts else 0
        end = begin + rows_per_part
        parts.append(output_dir / PART_NAME.format(len(parts) + 1))
        parts[-1].write_bytes(b"".join(lines[begin:end]))
    return parts


def join_outputs(outputs: list[Path], joined: Path, context_length: int, score_window: int) -> Path:
    """Concatenate the parts' `.out` files in order, keeping of each the rows scored as in one request: a
    later part's first context-length + (w - 1) // 2 lines and every part's last w // 2 lines but the last
    part's are the neighbours' (their sum is the overlap of `split_series`)."""
    before, after = rows_around(score_window)
    repeated = overlap(context_length, score_window)
    with open(joined, "wb") as target:
        for number, output in enumerate(outputs):
            lines = output.read_bytes().splitlines(keepends=True)
            head = context_length + before if number else 0
            tail = after if number < len(outputs) - 1 else 0
            if number and len(lines) <= repeated:
                raise LocalJobError(f"{output} has {len(lines)} lines, no more than the {repeated} rows it overlaps "
                                    "with the part before: was it split with another context-length or "
                                    "score-window?")
            target.writelines(lines[head:len(lines) - tail])
    return joined
