"""Series longer than one request: split into files that overlap, join the answers.

Batch transform sends each file whole when SplitType is None, up to MaxPayloadInMB (at most
100 MB). A longer series is split into parts whose first `overlap` rows repeat the end of the part
before (`split_series`); every part is transformed as a file of its own, and `join_outputs` keeps
of each part only the rows that the part scores as one long request would, so the joined `.out` has
exactly one line per row of the series and warm-up rows only at its start.

A file cannot say where it starts in the series (a live stream's request can: CustomAttributes first-row), so
the parts start where the network's chunks start in one long request: on multiples of its chunk length
(lstm_ad/forecast.py). Each part's chunks are then the long request's own, and from its second chunk on it reads
every chunk as the long request does: a row is scored as there when its part holds `head` rows before it (a
chunk and the rows its score window and discord subsequence read before it) and `tail` rows after it (those they
read after it): `margins(...)`, or `Predictor.split_margins()` of a trained model
(lstm_ad/scoring/error_model.py, split_margins). Parts overlap by head + tail, a whole number of chunks, and hold
a whole number of chunks; a later part's first `head` rows and every part's last `tail` rows but the last part's
are left to the neighbouring part. The joined scores are those of one long request (up to the discord term's
running sums, about 1e-13 relative; gaps near a part's start are filled from the part's start).
"""

from __future__ import annotations

from pathlib import Path

from lstm_ad.forecast import default_chunk_length
from lstm_ad.scoring.error_model import split_margins
from lstm_ad.scoring.window import CENTRED

from .errors import LocalJobError

PART_NAME = "part-{:05d}.csv"


def margins(context_length: int, score_window: int, discord_window: int = 0, position: str = CENTRED
            ) -> tuple[int, int]:
    """(head, tail) of split_margins for a model of these hyperparameters (its chunk length derived from
    context-length, as training does)."""
    return split_margins(default_chunk_length(context_length), score_window, position, discord_window)


def split_series(series: Path, output_dir: Path, rows_per_part: int, overlap: int, chunk_length: int = 1
                 ) -> list[Path]:
    """Write `series` as parts of at most `rows_per_part` rows, a whole number of `chunk_length` rows, each
    after the first starting with the last `overlap` rows (whole chunks) of the one before, so every part starts
    on a multiple of `chunk_length`. Returns the part files in order."""
    rows = rows_per_part // chunk_length * chunk_length
    if rows <= overlap:
        raise LocalJobError(f"rows per part ({rows_per_part}) must be at least {overlap + chunk_length}: each part "
                            f"repeats the {overlap} rows the model reads around a row of the part before, and holds "
                            f"whole chunks of {chunk_length} rows (the network's, so that it reads each part's "
                            "chunks as in one long request).")
    if overlap % chunk_length:
        raise LocalJobError(f"the overlap ({overlap} rows) must be whole chunks of {chunk_length} rows.")
    rows_per_part = rows
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


def join_outputs(outputs: list[Path], joined: Path, head: int, tail: int, chunk_length: int = 1) -> Path:
    """Concatenate the parts' `.out` files in order, keeping of each the rows scored as in one request: a
    later part's first `head` lines and every part's last `tail` lines but the last part's are the neighbours'
    (`margins`; head + tail is the overlap of `split_series`). Every part but the last must hold whole chunks of
    `chunk_length` rows, as `split_series` writes them; nothing is written unless all parts fit."""
    staging = joined.with_name(joined.name + ".partial")
    try:
        with open(staging, "wb") as target:
            for number, output in enumerate(outputs):
                lines = output.read_bytes().splitlines(keepends=True)
                last = number == len(outputs) - 1
                if number and len(lines) <= head + tail:
                    raise LocalJobError(f"{output} has {len(lines)} lines, no more than the {head + tail} rows it "
                                        "overlaps with the part before: was it split for another model?")
                if not last and len(lines) % chunk_length:
                    raise LocalJobError(f"{output} has {len(lines)} lines, not whole chunks of {chunk_length} rows: "
                                        "its parts were not split by `lstm-ad-local split` for this model (parts "
                                        "start on the network's chunk boundaries); split the series again.")
                target.writelines(lines[head if number else 0:len(lines) - (0 if last else tail)])
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    staging.replace(joined)
    return joined
