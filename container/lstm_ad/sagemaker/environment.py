"""Numbers from environment variables, read one way for every setting of the shell (settings.py, cluster.py).

A variable that is unset or blank takes its default; any other value must read as the kind asked for (an
integer, or a finite number) within [low, high] (no upper bound when high is None). Bad values are
collected, not raised one at a time, so that the caller can report every one of them together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


class EnvironmentNumbers:
    """Reads numbers from `environ`; `problems` lists each bad value as `NAME='value' must be ...`."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ
        self.problems: list[str] = []

    def integer(self, names: str | tuple[str, ...], default: int, low: int, high: int | None = None) -> int:
        """The first of `names` that is set (SageMaker's name before an alias), else `default`."""
        return int(self._read(names, default, low, high, integer=True))

    def number(self, names: str | tuple[str, ...], default: float, low: float, high: float | None = None) -> float:
        return self._read(names, default, low, high, integer=False)

    def is_set(self, name: str) -> bool:
        return bool(self.environ.get(name, "").strip())

    def _read(self, names: str | tuple[str, ...], default: float, low: float, high: float | None,
              integer: bool) -> float:
        name = next((n for n in ((names,) if isinstance(names, str) else names) if self.is_set(n)), None)
        if name is None:
            return default
        raw = self.environ[name].strip()
        try:
            value: float | None = int(raw) if integer else float(raw)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < low or (high is not None and value > high):
            kind = "an integer" if integer else "a number"
            allowed = f">= {low:g}" if high is None else f"in [{low:g}, {high:g}]"
            self.problems.append(f"{name}={raw!r} must be {kind} {allowed}")
            return default
        return value
