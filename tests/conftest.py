"""Shared fixtures: generated series, a fake /opt/ml tree, the real shared data when present,
and the training job run in-process (`train_job`). And the fast loop's two rules: a test not marked
`slow` may not start a process (`pytest -m "not slow"` stays quick), and a slow test gets a longer
time limit than the others (pyproject.toml's `timeout`)."""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.testing  # noqa: F401  # numpy<2 runs lscpu on import: at collection, not in a fast test
import pytest

from lstm_ad.sagemaker.cli import StopFlag, run_train
from lstm_ad.sagemaker.metrics import METRICS, emit
from lstm_ad.sagemaker.paths import Paths, write_training_config

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SLOW_TIMEOUT_S = 1800  # a test marked slow: the notebook and the distributed jobs take minutes on a busy machine


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))


class ProcessInFastTest(Exception):
    """A test not marked slow started a process."""


@contextmanager
def processes_refused(item: pytest.Item) -> Iterator[None]:
    """While a test that is not marked slow sets up and runs, starting a process (subprocess: console scripts,
    gunicorn, Jupyter kernels, Docker) fails it with the rule, so the fast loop stays fast."""
    if item.get_closest_marker("slow"):
        yield
        return
    start = subprocess.Popen._execute_child  # type: ignore[attr-defined]  # where every Popen starts its child

    def refuse(self: subprocess.Popen, args: object, *rest: object, **options: object) -> None:
        raise ProcessInFastTest(f"{item.nodeid} starts a process ({args!r}): mark it @pytest.mark.slow")

    subprocess.Popen._execute_child = refuse  # type: ignore[attr-defined]
    try:
        yield
    finally:
        subprocess.Popen._execute_child = start  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with processes_refused(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with processes_refused(item):
        yield


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
                input_mode: str = "File", **resources: Any) -> Path:
    """Lay out a fake /opt/ml for the `train` entrypoint (the local runner's writer) with CSV channels;
    `resources`: hosts, current_host, distribution (write_training_config)."""
    write_training_config(Paths(base), channels, hyperparameters, input_mode=input_mode, **resources)
    for channel, files in channels.items():
        for name, values in files.items():
            write_csv(base / "input" / "data" / channel / name, values)
    return base


TINY_HYPERPARAMETERS = {
    "context-length": "20", "prediction-length": "2", "sequence-stride": "5", "hidden-size": "8",
    "num-layers": "1", "epochs": "2", "batch-size": "32",
}


def metric_values(log: str, name: str) -> list[float]:
    """Every value of metric `name` in a training log, read with its MetricDefinitions regex."""
    regex = next(m.regex for m in METRICS if m.name == name)
    return [float(v) for v in re.findall(regex, log)]


@dataclass(frozen=True)
class TrainRun:
    returncode: int  # the exit code `train` would exit with
    stdout: str  # the log lines, as `train` prints them


@pytest.fixture
def train_job(caplog: pytest.LogCaptureFixture) -> Callable[[Path], TrainRun]:
    """Run the training job of a fake /opt/ml in this process, as the `train` console script does."""
    def run(base: Path) -> TrainRun:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            code = run_train(Paths(base), StopFlag())
        lines = [f"{record.levelname} {record.name}: {record.getMessage()}" for record in caplog.records]
        return TrainRun(code, "\n".join(lines) + "\n")
    return run


@pytest.fixture
def metric_log_lines(caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    """One log line per metric exactly as `train` prints it (cli.configure_process's log format)."""
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    with caplog.at_level(logging.INFO, logger="lstm_ad.sagemaker.metrics"):
        for index, metric in enumerate(METRICS):
            emit(metric.name, 0.5 + index * 1.25e-3)
    lines = [formatter.format(record) for record in caplog.records if record.name == "lstm_ad.sagemaker.metrics"]
    return {metric.name: line for metric, line in zip(METRICS, lines, strict=True)}


@pytest.fixture(scope="module")
def one_torch_thread():
    """As in a server worker; several intra-op threads on a busy 2-core machine are many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def slow_nearest(model: Any, errors: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """For each row, the centre of least Mahalanobis distance, one at a time; a row with gaps first completed by
    the conditional mean of its missing entries (Σ_mo Σ_oo^-1 (e_o - μ_o) + μ_m, the textbook formula)."""
    mean, cov = model.gaussian.mean, model.gaussian.cov
    found = []
    for i, e in enumerate(errors):
        o, m = np.isfinite(e), ~np.isfinite(e)
        if not o.any():
            found.append(-1)
            continue
        e = e.copy()
        e[m] = mean[m] + cov[np.ix_(m, o)] @ np.linalg.solve(cov[np.ix_(o, o)], e[o] - mean[o])
        best, best_distance = -1, np.inf
        for j, centre in enumerate(model.centres.astype(np.float64)):
            if exclude is not None and exclude[i] == j:
                continue
            d = e - centre
            distance = d @ np.linalg.solve(cov, d)
            if distance < best_distance:
                best, best_distance = j, distance
        found.append(best)
    return np.array(found)
