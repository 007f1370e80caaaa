"""Metric lines in the logs, and the regexes SageMaker uses to read them.

Each metric is printed on its own line as `name=value;` so one simple, anchored
regex per metric reads it (SageMaker MetricDefinitions). Values are always finite
numbers. The algorithm specification's MetricDefinitions are generated from
`METRICS`, and the tests check every regex against the lines `train` prints.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

logger = logging.getLogger("lstm_ad.metrics")

NUMBER = r"([0-9.eE+-]+)"


@dataclass(frozen=True)
class Metric:
    name: str
    doc: str
    final: bool  # emitted once after training (tuning objectives) vs. once per epoch

    @property
    def regex(self) -> str:
        return f"{self.name}={NUMBER};"


METRICS: tuple[Metric, ...] = (
    Metric("train_mse", "Per epoch: mean squared training loss (standardised units).", False),
    Metric("train_mae", "Per epoch: mean absolute training error (standardised units).", False),
    Metric("calibration_mse", "Per epoch: mean squared error on the calibration part "
           "(the early-stopping criterion).", False),
    Metric("valid_mse", "Per epoch: mean squared error on the validation channel.", False),
    Metric("valid_mae", "Per epoch: mean absolute error on the validation channel.", False),
    Metric("train:mse", "Final: mean squared error of the trained model on the fitting part.", True),
    Metric("train:mae", "Final: mean absolute error of the trained model on the fitting part.", True),
    Metric("calibration:mse", "Final: mean squared error on the calibration part.", True),
    Metric("valid:mse", "Final: mean squared error on the validation channel (needs it).", True),
    Metric("valid:mae", "Final: mean absolute error on the validation channel (needs it).", True),
)

METRIC_NAMES = {metric.name for metric in METRICS}


def emit(name: str, value: float) -> None:
    """Log one metric line; refuse names without a MetricDefinition and non-finite values."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}")
    if not math.isfinite(value):
        logger.warning("metric %s is not finite (%r); not emitted", name, value)
        return
    logger.info("%s=%.6g;", name, value)
