"""The `serve` process: gunicorn (no nginx) serving the Flask app of app.py.

The master validates the model once (a model that cannot be loaded stops `serve`
at once with the reason, instead of a server whose workers die in a loop), then
forks the workers; each worker loads its own copy after the fork, with its torch
thread count set so that the workers together do not oversubscribe the cores.
SIGTERM makes gunicorn stop accepting, finish the requests in flight (within
GRACEFUL_TIMEOUT_S, before SageMaker's SIGKILL) and exit 0.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Any

import numpy as np
import torch
from flask import Flask
from gunicorn.app.base import BaseApplication

from ..errors import ArtifactError, UserError
from ..predictor import Predictor
from .app import create_app
from .gpus import visible_gpus
from .outputs import ALARM, ENV_VARIABLE, OPTIONS, serving_outputs
from .paths import Paths, base_dir
from .process import configure_serve_worker
from .settings import (
    GRACEFUL_TIMEOUT_S,
    HEALTH_THREADS,
    ServeSettings,
    available_memory_bytes,
    settings_from_env,
)
from .worker import HealthFirstWorker

logger = logging.getLogger(__name__)

EXIT_BAD_MODEL = 1
EXIT_BAD_SETTINGS = 2
QUEUED_CONNECTIONS = 16  # per worker: connections accepted beyond its threads (kept alive or waiting)


class InferenceServer(BaseApplication):
    def __init__(self, paths: Paths, settings: ServeSettings):
        self.paths = paths
        self.settings = settings
        self.worker_number = 0
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        HealthFirstWorker.health_threads = HEALTH_THREADS
        options: dict[str, Any] = {
            "bind": f"0.0.0.0:{s.port}",
            "workers": s.workers,
            "threads": s.threads,
            "worker_class": "lstm_ad.sagemaker.worker.HealthFirstWorker",
            # A worker holds a bounded number of connections (gunicorn's default is 1000): requests beyond
            # wait in the listen queue, where another worker (or this one's replacement, if it is killed)
            # takes them, instead of in a queue that dies with the worker. The bound leaves room for
            # kept-alive clients so that /ping is still accepted under load (scripts/bench_load.py).
            "worker_connections": s.threads + HEALTH_THREADS + QUEUED_CONNECTIONS,
            "timeout": s.timeout_s,
            "graceful_timeout": GRACEFUL_TIMEOUT_S,
            "keepalive": 75,  # longer than a load balancer's idle timeout (60 s)
            "preload_app": False,  # each worker loads the model after the fork
            "accesslog": "-",
            "errorlog": "-",
            "loglevel": "info",
            "post_fork": _post_fork,
        }
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25: no socket in $HOME
            options["control_socket_disable"] = True
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        """Runs in each worker after the fork."""
        device = worker_device(self.settings, self.worker_number)
        predictor = Predictor.load(self.paths.model_dir, device=device)
        # The first forward pass loads and compiles kernels (seconds): pay it before answering /ping.
        predictor.score(np.zeros((predictor.context_length + 1, predictor.columns)))
        logger.info("Worker loaded the model from %s on %s (%d columns, context-length %d).",
                    self.paths.model_dir, device, predictor.columns, predictor.context_length)
        return create_app(predictor, self.settings)


def _post_fork(server: Any, worker: Any) -> None:
    """Runs in the new worker before `load`."""
    configure_serve_worker(server.app.settings.torch_threads)
    server.app.worker_number = worker.age  # 1, 2, ... in spawn order: spreads workers over GPUs


def worker_device(settings: ServeSettings, worker_number: int) -> torch.device:
    if not settings.use_gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        logger.warning("GPU device files are present but CUDA is unavailable to this torch (built for CUDA %s): "
                       "the host's NVIDIA driver is probably older than that build needs (SageMaker's GPU "
                       "inference hosts run driver 470 unless the model sets an InferenceAmiVersion or "
                       "TransformAmiVersion with a newer one). This worker scores on the CPU.",
                       torch.version.cuda or "no CUDA")
        return torch.device("cpu")
    return torch.device(f"cuda:{worker_number % torch.cuda.device_count()}")


def main() -> None:
    """Entry point behind `serve` (logging is configured by cli.serve)."""
    paths = Paths(base_dir())
    try:
        settings = settings_from_env(gpus=visible_gpus(), memory_bytes=available_memory_bytes())
    except UserError as exc:
        logger.error("%s", exc)
        sys.exit(EXIT_BAD_SETTINGS)
    try:
        predictor = Predictor.load(paths.model_dir)  # validate before forking; workers load their own
    except ArtifactError as exc:
        logger.error("Cannot serve: %s", exc)
        sys.exit(EXIT_BAD_MODEL)
    except Exception as exc:  # e.g. a truncated weights file: still the model's fault, still fatal
        logger.exception("Cannot serve: the model in %s could not be loaded (%s: %s). Use a model.tar.gz "
                         "produced by this algorithm's training job.", paths.model_dir, type(exc).__name__, exc)
        sys.exit(EXIT_BAD_MODEL)
    outputs, chooser = serving_outputs(settings.outputs, predictor.hyperparameters.default_output)
    settings = dataclasses.replace(settings, outputs=outputs)
    if ALARM in outputs and predictor.error_model.alarm_threshold is None:  # only LSTM_AD_OUTPUT can ask: such a model
        # predates default-output too
        logger.error("Cannot serve: %s=%s asks for the alarm column, but the model in %s has no stored alarm "
                     "threshold (it was trained by an earlier version of LSTM-AD). Retrain it, or leave `alarm` out "
                     "of %s.", ENV_VARIABLE, ",".join(sorted(outputs)), paths.model_dir, ENV_VARIABLE)
        sys.exit(EXIT_BAD_SETTINGS)
    logger.info("Serving %s on 0.0.0.0:%d: %d workers x %d threads, %d torch threads each, timeout %d s, "
                "max payload %d MB, model of %d columns and context-length %d; optional outputs unless a request "
                "chooses: %s (%s).", paths.model_dir, settings.port, settings.workers, settings.threads,
                settings.torch_threads, settings.timeout_s, settings.max_payload_mb, predictor.columns,
                predictor.context_length, ",".join(o for o in OPTIONS if o in outputs) or "none",
                chooser)
    logger.info("%s", predictor.rows_needed_text())
    del predictor
    InferenceServer(paths, settings).run()
