"""Series longer than one request: split into files that overlap by context-length rows, join the answers.

Batch transform sends each file whole when SplitType is None, up to MaxPayloadInMB (at most
100 MB). A longer series is split into parts whose first context-length rows repeat the end of
the part before (`split_series`); every part is transformed as a file of its own, and
`join_outputs` drops each later part's warm-up rows, which the part before has scored, so the
joined `.out` has exactly one line per row of the series and warm-up rows only at its start.

Rows near a part's start are scored after a warm-up of context-length rows, as every chunk of a
long request is (lstm_ad/forecast.py), but on a different chunk grid: their scores agree with
those of a single request up to the network's sensitivity to its initial state, not bit for bit.
"""

from __future__ import annotations

from pathlib import Path

from lstm_ad.errors import LocalJobError

PART_NAME = "part-{:05d}.csv"


def split_series(series: Path, output_dir: Path, rows_per_part: int, context_length: int) -> list[Path]:
    """Write `series` as parts of at most `rows_per_part` rows, each after the first starting with the
    last `context_length` rows of the one before. Returns the part files in order."""
    if rows_per_part <= context_length:
        raise LocalJobError(f"rows per part ({rows_per_part}) must exceed context-length ({context_length}): "
                            "each part repeats context-length rows of the one before.")
    lines = [line.rstrip(b"\r\n") + b"\n" for line in series.read_bytes().splitlines() if line.strip()]
    if not lines:
        raise LocalJobError(f"{series} holds no rows.")
    output_dir.mkdir(parents=True, exist_ok=True)
    parts: list[Path] = []
    end = 0  # the first row that no part holds yet
    while end < len(lines):
        begin = end - context_length if parts else 0
        end = begin + rows_per_part
        parts.append(output_dir / PART_NAME.format(len(parts) + 1))
        parts[-1].write_bytes(b"".join(lines[begin:end]))
    return parts


def join_outputs(outputs: list[Path], joined: Path, context_length: int) -> Path:
    """Concatenate the parts' `.out` files in order, without each later part's first context-length lines."""
    with open(joined, "wb") as target:
        for number, output in enumerate(outputs):
            lines = output.read_bytes().splitlines(keepends=True)
            if number and len(lines) <= context_length:
                raise LocalJobError(f"{output} has {len(lines)} lines, no more than the context-length "
                                    f"({context_length}) it overlaps with the part before: was it split with "
                                    "another context-length?")
            target.writelines(lines[context_length if number else 0:])
    return joined
