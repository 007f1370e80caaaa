"""Shared fixtures: generated series, a fake /opt/ml tree, the real shared data when present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the real-data tests need ../shared/data beside the repository")
    return path


def sine_series(rows: int, columns: int = 1, period: int = 40, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """A clean, periodic multivariate series (each column phase-shifted) with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)[:, None]
    phase = np.arange(columns)[None, :] * 0.7
    return np.sin(2 * np.pi * t / period + phase) + noise * rng.standard_normal((rows, columns))


def write_csv(path: Path, values: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, values, delimiter=",", fmt="%.6f")
    return path


def make_opt_ml(base: Path, hyperparameters: dict[str, str], channels: dict[str, dict[str, np.ndarray]],
                input_mode: str = "File") -> Path:
    """Lay out a fake /opt/ml for the `train` entrypoint, hyperparameters as strings as SageMaker writes."""
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in hyperparameters.items()}))
    (config / "inputdataconfig.json").write_text(json.dumps({
        name: {"ContentType": "text/csv", "TrainingInputMode": input_mode, "S3DistributionType": "FullyReplicated",
               "RecordWrapperType": "None"} for name in channels}))
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
    for channel, files in channels.items():
        for name, values in files.items():
            write_csv(base / "input" / "data" / channel / name, values)
    return base


TINY_HYPERPARAMETERS = {
    "context-length": "20", "prediction-length": "2", "sequence-stride": "5", "hidden-size": "8",
    "num-layers": "1", "epochs": "2", "batch-size": "32",
}
