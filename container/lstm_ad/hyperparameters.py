"""The hyperparameters of LSTM-AD: each declared once, with its type, default, range and doc.

`Hyperparameters` is the schema: every field carries its `Spec` (range and doc) as
metadata, and `SCHEMA` is read off the fields. Validation, the README tables and the
Marketplace algorithm specification all come from there, so a name, default or range
is written exactly once. Names are the listing's (`context-length`); fields use
underscores. Decoding SageMaker's strings is the shell's job (`sagemaker/hyperparameters.py`);
this module takes values that are already numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import EXCERPT_CHARS, HyperparameterError


@dataclass(frozen=True)
class Spec:
    """One hyperparameter: its name as users write it, type, default and range (or, for a categorical
    one, its values)."""

    name: str
    type: type  # int, float, or str: a categorical, one of `choices`
    default: int | float | str
    min: int | float
    max: int | float
    doc: str
    tunable: bool = True
    min_exclusive: bool = False  # for ranges such as (0, 1)
    max_exclusive: bool = False
    choices: tuple[str, ...] = ()  # a categorical's values (min and max unused)

    @property
    def field(self) -> str:
        return self.name.replace("-", "_")

    def range_text(self) -> str:
        if self.choices:
            return "one of " + ", ".join(f'"{choice}"' for choice in self.choices)
        left = "(" if self.min_exclusive else "["
        right = ")" if self.max_exclusive else "]"
        return f"{left}{_fmt(self.min)}, {_fmt(self.max)}{right}"

    def check(self, value: Any, shown: str) -> tuple[int | float | str | None, str | None]:
        """(typed value, None) when `value` is valid, else (None, the problem naming `shown`)."""
        if self.choices:
            choice = value.strip().lower() if isinstance(value, str) else None
            if choice not in self.choices:
                return None, f"`{self.name}` must be {self.range_text()}, got {shown}"
            return choice, None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            kind = "an integer" if self.type is int else "a number"
            return None, f"`{self.name}` must be {kind}, got {shown}"
        if self.type is int:
            if isinstance(value, float):
                if not math.isfinite(value) or value != int(value):
                    return None, f"`{self.name}` must be an integer, got {shown}"
                value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                return None, f"`{self.name}` must be a finite number, got {shown}"
        too_low = value <= self.min if self.min_exclusive else value < self.min
        too_high = value >= self.max if self.max_exclusive else value > self.max
        if too_low or too_high:
            return None, f"`{self.name}` must be in {self.range_text()}, got {shown}"
        return value, None


def _fmt(value: int | float | str) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _short(shown: str) -> str:
    """How the user wrote a value (escaped already: JSON or repr), cut to EXCERPT_CHARS for the messages."""
    return shown if len(shown) <= EXCERPT_CHARS else shown[:EXCERPT_CHARS - 3] + "..."


def _declare(default: int | float, low: int | float, high: int | float, doc: str, **options: bool) -> Any:
    """A dataclass field whose metadata holds the rest of its Spec (name and type come from the field)."""
    return dataclasses.field(default=default, metadata={"range": (low, high), "doc": doc, "options": options})


def _declare_choice(default: str, choices: tuple[str, ...], doc: str, **options: bool) -> Any:
    """A categorical hyperparameter's field: one of `choices` (strings)."""
    return dataclasses.field(default=default, metadata={"choices": choices, "doc": doc, "options": options})


@dataclass(frozen=True)
class Hyperparameters:
    context_length: int = _declare(
        100, 2, 100_000,
        "Rows of history the LSTM reads before its predictions are scored: the warm-up of every "
        "request and the length of each training subsequence.")
    prediction_length: int = _declare(
        10, 1, 1_000,
        "Rows ahead the LSTM predicts at every step (l). Each row's error vector holds the l "
        "predictions made for it; must not exceed context-length. The default 10 found the most anomalies "
        "among the values tried on the UCR anomaly archive series it was chosen on.")
    sequence_stride: int = _declare(10, 1, 100_000, "Rows between the starts of consecutive training subsequences.")
    num_layers: int = _declare(2, 1, 10, "Number of stacked LSTM layers.")
    hidden_size: int = _declare(32, 1, 4_096, "Hidden units per LSTM layer.")
    dropout: float = _declare(0.0, 0.0, 1.0, "Dropout after each LSTM layer during training.", max_exclusive=True)
    lr: float = _declare(
        3e-3, 0.0, 10.0,
        "Adam learning rate (the default 3e-3 converges within the default 50 epochs on the benchmark "
        "series, where 1e-3 was still improving).", min_exclusive=True)
    batch_size: int = _declare(64, 1, 100_000, "Training subsequences per mini-batch.")
    epochs: int = _declare(50, 1, 100_000, "Maximum passes over the training subsequences.")
    early_stopping_patience: int = _declare(
        5, 0, 100_000,
        "Stop after this many epochs without improvement of the calibration loss and keep the best "
        "epoch's weights; 0 trains for all epochs.")
    calibration_fraction: float = _declare(
        0.2, 0.0, 1.0,
        "Trailing fraction of each training series that calibrates the error model (its Gaussian, the score "
        "window's scales, the alarm threshold) and decides early stopping, never fits the LSTM.",
        min_exclusive=True, max_exclusive=True)
    error_centres: int = _declare(
        0, 0, 1_000_000,
        "Error vectors of training rows (a random sample of the fitting and calibration rows) that the error "
        "model keeps as the centres of its Gaussians, all with the calibration covariance: a row's "
        "log-likelihood is that of the Gaussian centred on the nearest of them. 0 (the default): one Gaussian "
        "centred on the mean error, as in the paper. With the discord term, 10,000 centres found no more "
        "anomalies than one Gaussian on the UCR anomaly archive series the defaults were chosen on, and score "
        "about 20 times slower. Changes scoring only, not the LSTM.", tunable=False)
    score_window: int = _declare(
        25, 1, 1_000,
        "Rows of each row's window (see score-window-position) whose mean log-likelihood is scored too: a "
        "row's score is the lowest of its own log-likelihood, that mean and the discord term, each measured "
        "against the calibration rows; 1 scores rows alone. The default 25 found the most anomalies among the "
        "values tried on the UCR anomaly archive series it was chosen on. Changes scoring only, not the LSTM.",
        tunable=False)
    score_window_position: str = _declare_choice(
        "centred", ("centred", "trailing"),
        "Where a row's score window and discord subsequence lie: centred on the row ((w-1)//2 rows before it "
        "and w//2 after: the lowest scores sit on an anomaly; the last rows of a request change once later "
        "rows arrive) or trailing (ending at the row: every score is final when it is returned, for live "
        "streams; the lowest scores trail an anomaly by up to the window). Changes scoring only.", tunable=False)
    discord_refs: int = _declare(
        1024, 0, 100_000,
        "Subsequences of the fitting rows kept as the discord term's references: a row's term is how far the "
        "shape of the subsequence around it (z-normalised, 8 piecewise means per column) lies from the nearest "
        "of them, measured against the calibration rows. Finds anomalies of shape that are predictable row by "
        "row. 0: no discord term (the LSTM's errors alone). Changes scoring only, not the LSTM.", tunable=False)
    discord_window: int = _declare(
        0, 0, 100_000,
        "Rows of each subsequence the discord term compares. 0 (the default): the dominant period of the "
        "fitting rows (the highest autocorrelation peak between 8 and 2,000 rows; context-length if there is "
        "none), for series of one column; for several columns 0 turns the term off, set a length to use it. "
        "Changes scoring only.", tunable=False)
    alarm_fraction: float = _declare(
        0.001, 0.0, 0.5,
        "The false-alarm rate the stored alarm threshold aims at on new normal rows: the lower tail of the "
        "calibration rows' scores, extrapolated to this fraction and moved down for the gap between calibration "
        "and new rows (on UCR series not used to choose the rule, a median of 1.1 times this rate at 0.01, 2.9 "
        "times at 0.001; on smd-dev's 38 server metrics, whose test month drifts from its training month, 6.5 and "
        "24 times); the optional alarm output flags rows scoring below it. Does not change training.",
        tunable=False, min_exclusive=True)
    default_output: str = _declare_choice(
        "none", ("none", "alarm", "attribution", "alarm,attribution"),
        "Optional output columns that the model's answers carry unless a request or the serving container's "
        "LSTM_AD_OUTPUT chooses others: the alarm column, the attribution columns, both, or none (the "
        "listing's layout). Stored in the model: the way to get them from batch transform of a Marketplace "
        "subscription, whose transform jobs take no environment. Does not change training.", tunable=False)
    seed: int = _declare(
        0, 0, 2**31 - 1,
        "Random seed; training on CPU is deterministic for a given seed, number of torch threads and "
        "CPU model.", tunable=False)

    @property
    def burn_in(self) -> int:
        """Steps of each training subsequence whose predictions are not scored (state still forming)."""
        return min(self.context_length // 4, 50)

    def to_json(self) -> dict[str, int | float | str]:
        """Listing-style names (`context-length`), as in hyperparameters.json."""
        return {spec.name: getattr(self, spec.field) for spec in SCHEMA}

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> Hyperparameters:
        return validate(values)


def _spec(field: dataclasses.Field[Any]) -> Spec:
    low, high = field.metadata.get("range", (0, 0))
    default: int | float | str = field.default  # type: ignore[assignment]  # every field has a default
    return Spec(field.name.replace("_", "-"), type(default), default, low, high,
                field.metadata["doc"], choices=field.metadata.get("choices", ()), **field.metadata["options"])


SCHEMA: tuple[Spec, ...] = tuple(_spec(f) for f in dataclasses.fields(Hyperparameters))
SPECS: dict[str, Spec] = {spec.name: spec for spec in SCHEMA}


def validate(values: Mapping[str, Any], shown: Mapping[str, str] | None = None) -> Hyperparameters:
    """Numbers by name (`context-length` or `context_length`) -> validated `Hyperparameters`.

    Missing names take their defaults. `shown` says how the user wrote each value (for the
    messages; default: as JSON). Raises `HyperparameterError` listing every problem (unknown
    names, bad types, out-of-range values, inconsistent pairs).
    """
    problems: list[str] = []
    typed: dict[str, int | float | str] = {}
    invalid: set[str] = set()
    for name, value in values.items():
        spec = SPECS.get(name) or SPECS.get(name.replace("_", "-"))
        if spec is None:
            problems.append(f"unknown hyperparameter `{name}`")
            continue
        checked, problem = spec.check(value, _short((shown or {}).get(name) or json.dumps(value, default=repr)))
        if problem is not None or checked is None:
            problems.append(problem or f"`{name}` is invalid")
            invalid.add(spec.name)
        else:
            typed[spec.field] = checked
    hp = dataclasses.replace(Hyperparameters(), **typed)  # type: ignore[arg-type]  # types checked above
    if not invalid & {"context-length", "prediction-length"} and hp.prediction_length > hp.context_length:
        problems.append(f"`prediction-length` ({hp.prediction_length}) must not exceed "
                        f"`context-length` ({hp.context_length})")
    if problems:
        raise HyperparameterError(problems, [spec.name for spec in SCHEMA])
    return hp
