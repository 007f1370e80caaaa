"""Training on the real shared data sets (skipped with a reason when ../shared/data is absent)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from conftest import make_opt_ml, metric_values, shared_data
from lstm_ad.data import read_series_file
from lstm_ad.predictor import Predictor

pytestmark = pytest.mark.slow  # real models on the real data sets: most of a minute

# The public listing's example configuration, with few epochs to keep the suite quick.
LISTING_EXAMPLE = {"context-length": "100", "prediction-length": "10", "sequence-stride": "10", "hidden-size": "32",
                   "num-layers": "2", "dropout": "0.5", "lr": "0.001", "batch-size": "128", "epochs": "2"}


def test_fg_sample_with_listing_hyperparameters(tmp_path: Path, train_job):
    folder = shared_data("fg-sample")
    base = make_opt_ml(tmp_path, LISTING_EXAMPLE, {
        "training": {"train.csv": read_series_file(folder / "train.csv")},
        "validation": {"valid.csv": read_series_file(folder / "valid.csv")},
    })
    result = train_job(base)
    assert result.returncode == 0, result.stdout
    assert len(metric_values(result.stdout, "valid:mse")) == 1
    scored = Predictor.load(base / "model").score(read_series_file(folder / "test.csv"))
    assert scored.score.shape == (5000,) and scored.predictions.shape == (5000, 2)
    assert np.isnan(scored.score[:100]).all() and np.isfinite(scored.score[100:]).all()


def test_ucr_series_is_found_with_the_product_defaults(tmp_path: Path, train_job):
    """One of the benchmark's series (docs/benchmarks.md, "Detection quality"), found at every seed there: trained
    with the defaults on its normal part, the lowest score of the rest lies on the labelled anomaly (UCR's
    criterion: within 100 rows of it)."""
    path = shared_data("ucr-dev", "115_UCR_Anomaly_CIMIS44AirTemperature3_4000_6520_6544.txt")
    train_end, anomaly_start, anomaly_end = map(int, re.findall(r"_(\d+)", path.stem)[-3:])
    values = read_series_file(path)
    base = make_opt_ml(tmp_path, {}, {"training": {"train.csv": values[:train_end]}})
    result = train_job(base)
    assert result.returncode == 0, result.stdout
    predictor = Predictor.load(base / "model")
    context = predictor.context_length
    scores = predictor.score(values[train_end - context:]).score[context:]  # warmed up on the training rows
    assert len(scores) == len(values) - train_end and np.isfinite(scores).all()
    lowest = train_end + int(np.argmin(scores))
    assert anomaly_start - 100 <= lowest <= anomaly_end + 100, (lowest, anomaly_start, anomaly_end)
    labelled = np.zeros(len(scores), dtype=bool)
    labelled[anomaly_start - train_end:anomaly_end - train_end] = True
    assert np.median(scores[labelled]) < np.quantile(scores[~labelled], 0.01)  # the whole anomaly, not one row
