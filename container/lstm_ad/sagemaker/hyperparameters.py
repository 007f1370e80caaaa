"""SageMaker's hyperparameter strings -> validated `Hyperparameters`.

SageMaker hands every value over as a string, formed differently by each client:
`str(v)` (SDK v2 `Estimator`), `json.dumps(v)` (framework estimators, so strings
arrive quoted) or the tuner's plain numbers. Keys that the platform adds on its own
(`_tuning_objective_metric`, `sagemaker_*`) are ignored, never rejected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..hyperparameters import Hyperparameters, validate

_RESERVED_EXACT = {"_tuning_objective_metric"}
_RESERVED_PREFIX = "sagemaker_"


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


def parse_hyperparameters(raw: Mapping[str, Any]) -> Hyperparameters:
    """hyperparameters.json's strings -> `Hyperparameters`; one `HyperparameterError` lists every problem."""
    kept = {name: value for name, value in raw.items() if not is_reserved(name)}
    shown = {name: json.dumps(value) if isinstance(value, str) else repr(value) for name, value in kept.items()}
    return validate({name: _decode(value) for name, value in kept.items()}, shown)
