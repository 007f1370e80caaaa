"""SageMaker's CustomAttributes: a real-time request's free-form header, `key=value` pairs.

`invoke_endpoint(..., CustomAttributes="output=alarm;first-row=5000")` reaches the container as the header
X-Amzn-SageMaker-Custom-Attributes (batch transform sends none). Two keys are read:

  output     the optional output columns (outputs.py)
  first-row  the number of the request's first row in the stream it is part of (0 for the stream's first row):
             a live stream's requests then get the scores of one long request (forecast.py's chunks)
"""

from __future__ import annotations

import re

from ..errors import UserError, excerpt

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
OUTPUT = "output"
FIRST_ROW = "first-row"
MAX_FIRST_ROW = 10**15


def custom_attribute(header: str, key: str) -> str | None:
    """The value of `key` in a CustomAttributes string (`key=value` pairs separated by `;` or `&`), or None."""
    for pair in re.split(r"[;&]", header):
        name, _, value = pair.partition("=")
        if name.strip().lower() == key:
            return value.strip()
    return None


def first_row(header: str) -> int:
    """The request's `first-row` (0 when absent); a UserError names the attribute and what it takes."""
    value = custom_attribute(header, FIRST_ROW)
    if value is None:
        return 0
    if not re.fullmatch(r"\d{1,16}", value) or int(value) > MAX_FIRST_ROW:
        raise UserError(f"{CUSTOM_ATTRIBUTES}, {FIRST_ROW}: expected the number of the request's first row in its "
                        f"stream (an integer from 0 to {MAX_FIRST_ROW}), got {excerpt(value)}.")
    return int(value)
