"""The hyperparameter schema: one source of truth.

Parsing `hyperparameters.json`, the README table and the Marketplace algorithm
specification are all generated from `SCHEMA`, so a name, default or range is
written exactly once.

SageMaker hands every value over as a string, formed differently by each client:
`str(v)` (SDK v2 `Estimator`), `json.dumps(v)` (framework estimators, so strings
arrive quoted) or the tuner's plain numbers. `parse_hyperparameters` accepts all of
them and reports every problem in one error.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import HyperparameterError

# Keys that SageMaker (tuning jobs, framework estimators) may add on its own.
_RESERVED_EXACT = {"_tuning_objective_metric"}
_RESERVED_PREFIX = "sagemaker_"


@dataclass(frozen=True)
class Spec:
    """One hyperparameter: its name as users write it, type, default and range."""

    name: str
    type: type  # int or float
    default: int | float
    min: int | float
    max: int | float
    doc: str
    tunable: bool = True
    min_exclusive: bool = False  # for ranges such as (0, 1)
    max_exclusive: bool = False

    @property
    def field(self) -> str:
        return self.name.replace("-", "_")

    def range_text(self) -> str:
        left = "(" if self.min_exclusive else "["
        right = ")" if self.max_exclusive else "]"
        return f"{left}{_fmt(self.min)}, {_fmt(self.max)}{right}"


def _fmt(value: int | float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


SCHEMA: tuple[Spec, ...] = (
    Spec("context-length", int, 100, 2, 100_000,
         "Rows of history the LSTM reads before its predictions are scored: the warm-up of every "
         "request and the length of each training subsequence."),
    Spec("prediction-length", int, 10, 1, 1_000,
         "Rows ahead the LSTM predicts at every step (l). Each row's error vector holds the l "
         "predictions made for it; must not exceed context-length. The default 10 found the most "
         "UCR anomalies in scripts/bench_quality.py."),
    Spec("sequence-stride", int, 10, 1, 100_000,
         "Rows between the starts of consecutive training subsequences."),
    Spec("num-layers", int, 2, 1, 10, "Number of stacked LSTM layers."),
    Spec("hidden-size", int, 32, 1, 4_096, "Hidden units per LSTM layer."),
    Spec("dropout", float, 0.0, 0.0, 1.0, "Dropout after each LSTM layer during training.",
         max_exclusive=True),
    Spec("lr", float, 3e-3, 0.0, 10.0, "Adam learning rate (the default 3e-3 converges within the "
         "default 50 epochs on the benchmark series, where 1e-3 was still improving).", min_exclusive=True),
    Spec("batch-size", int, 64, 1, 100_000, "Training subsequences per mini-batch."),
    Spec("epochs", int, 50, 1, 100_000, "Maximum passes over the training subsequences."),
    Spec("early-stopping-patience", int, 5, 0, 100_000,
         "Stop after this many epochs without improvement of the calibration loss and keep "
         "the best epoch's weights; 0 trains for all epochs."),
    Spec("calibration-fraction", float, 0.2, 0.0, 1.0,
         "Trailing fraction of each training series used to fit the Gaussian error model, "
         "never to fit the LSTM.", min_exclusive=True, max_exclusive=True),
    Spec("seed", int, 0, 0, 2**31 - 1,
         "Random seed; training on CPU is deterministic for a given seed, number of torch threads "
         "and CPU model.",
         tunable=False),
)

SPECS: dict[str, Spec] = {spec.name: spec for spec in SCHEMA}


@dataclass(frozen=True)
class Hyperparameters:
    context_length: int = 100
    prediction_length: int = 10
    sequence_stride: int = 10
    num_layers: int = 2
    hidden_size: int = 32
    dropout: float = 0.0
    lr: float = 3e-3
    batch_size: int = 64
    epochs: int = 50
    early_stopping_patience: int = 5
    calibration_fraction: float = 0.2
    seed: int = 0

    @property
    def burn_in(self) -> int:
        """Steps of each training subsequence whose predictions are not scored (state still forming)."""
        return min(self.context_length // 4, 50)

    def to_json(self) -> dict[str, int | float]:
        """Listing-style names (`context-length`), as in hyperparameters.json."""
        return {spec.name: getattr(self, spec.field) for spec in SCHEMA}

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> Hyperparameters:
        return parse_hyperparameters({k: json.dumps(v) for k, v in values.items()})


def _check_defaults_match_schema() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(Hyperparameters)}
    schema = {spec.field: spec.default for spec in SCHEMA}
    if defaults != schema:  # a programming error, caught by the first import in any test
        raise RuntimeError(f"Hyperparameters defaults {defaults} differ from SCHEMA {schema}")


_check_defaults_match_schema()


def is_reserved(name: str) -> bool:
    """Keys SageMaker itself may add; they are ignored, never rejected."""
    return name in _RESERVED_EXACT or name.startswith(_RESERVED_PREFIX)


def _decode(raw: Any) -> Any:
    """Undo whichever string encoding the client used (json.dumps or str)."""
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    try:
        value = json.loads(text)
    except ValueError:
        return text
    # json.dumps of a string arrives quoted: '"100"' -> "100"; decode once more.
    if isinstance(value, str):
        return _decode(value) if value != text else value
    return value


def _convert(spec: Spec, raw: Any) -> tuple[int | float | None, str | None]:
    value = _decode(raw)
    shown = json.dumps(raw) if isinstance(raw, str) else repr(raw)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "an integer" if spec.type is int else "a number"
        return None, f"`{spec.name}` must be {kind}, got {shown}"
    if spec.type is int:
        if isinstance(value, float):
            if not math.isfinite(value) or value != int(value):
                return None, f"`{spec.name}` must be an integer, got {shown}"
            value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            return None, f"`{spec.name}` must be a finite number, got {shown}"
    too_low = value <= spec.min if spec.min_exclusive else value < spec.min
    too_high = value >= spec.max if spec.max_exclusive else value > spec.max
    if too_low or too_high:
        return None, f"`{spec.name}` must be in {spec.range_text()}, got {shown}"
    return value, None


def parse_hyperparameters(raw: Mapping[str, Any]) -> Hyperparameters:
    """Strings from hyperparameters.json -> typed, validated `Hyperparameters`.

    Missing names take their defaults. Raises `HyperparameterError` listing every
    problem (unknown names, bad types, out-of-range values, inconsistent pairs).
    """
    problems: list[str] = []
    values: dict[str, int | float] = {}
    invalid: set[str] = set()
    for name, raw_value in raw.items():
        if is_reserved(name):
            continue
        spec = SPECS.get(name) or SPECS.get(name.replace("_", "-"))
        if spec is None:
            problems.append(f"unknown hyperparameter `{name}`")
            continue
        value, problem = _convert(spec, raw_value)
        if problem or value is None:
            problems.append(problem or f"`{name}` is invalid")
            invalid.add(spec.name)
        else:
            values[spec.field] = value
    hp = dataclasses.replace(Hyperparameters(), **values)  # type: ignore[arg-type]  # types checked above
    if not invalid & {"context-length", "prediction-length"} and hp.prediction_length > hp.context_length:
        problems.append(
            f"`prediction-length` ({hp.prediction_length}) must not exceed "
            f"`context-length` ({hp.context_length})"
        )
    if problems:
        raise HyperparameterError(problems, [spec.name for spec in SCHEMA])
    return hp

