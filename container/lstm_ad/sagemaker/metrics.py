"""Metric lines in the logs, and the regexes SageMaker uses to read them.

Each metric is printed on its own line as `name=value;` so one simple, anchored
regex per metric reads it (SageMaker MetricDefinitions). Values are always finite
numbers. The algorithm specification's MetricDefinitions are generated from
`METRICS`, and the tests check every regex against the lines `train` prints.
The training loop knows nothing of this format: `emit_epoch` is its `on_epoch`
callback, and `emit_final` prints the summary's final metrics.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the tools read METRICS without importing torch
    from ..training import EpochReport

logger = logging.getLogger(__name__)

NUMBER = r"([0-9.eE+-]+)"


@dataclass(frozen=True)
class Metric:
    name: str
    doc: str
    final: bool  # emitted once after training vs. once per epoch
    objective: bool = True  # a final metric that is a tuning objective (minimised)

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
    Metric("alarm:threshold", "Final: the stored alarm threshold, a score (log-likelihood units, usually "
           "negative), set from the calibration rows' scores for alarm-fraction. Not an objective.", True,
           objective=False),
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


def emit_epoch(report: EpochReport) -> None:
    """The per-epoch metric lines (the training loop's `on_epoch` callback)."""
    emit("train_mse", report.train_mse)
    emit("train_mae", report.train_mae)
    emit("calibration_mse", report.calibration_mse)
    if report.valid_mse is not None and report.valid_mae is not None:
        emit("valid_mse", report.valid_mse)
        emit("valid_mae", report.valid_mae)


def emit_final(metrics: Mapping[str, float]) -> None:
    """The final metric lines (tuning objectives), in the summary's order."""
    for name, value in metrics.items():
        emit(name, value)
