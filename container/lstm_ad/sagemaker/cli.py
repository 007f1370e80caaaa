"""Console scripts: `train` and `serve`, as SageMaker runs them (`docker run IMAGE train|serve`).

Process-wide settings (logging, the allocator) are configured here and only here. The
module imports nothing heavy: `train` installs its SIGTERM handler before torch loads,
so a job stopped in its first second still ends with a failure file.
`run_train(paths, stop)` is the whole training job as a function returning the exit code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from ..errors import ClusterError, TrainingStopped, UserError
from .paths import (
    TRAINING_CHANNEL,
    VALIDATION_CHANNEL,
    Paths,
    base_dir,
    read_hyperparameters,
    training_channels,
    write_failure,
)

if TYPE_CHECKING:
    from ..hyperparameters import Hyperparameters
    from .ranks import Job

logger = logging.getLogger("lstm_ad")

EXIT_OK = 0
EXIT_ALGORITHM_ERROR = 1
EXIT_USER_ERROR = 2
EXIT_STOPPED = 143  # 128 + SIGTERM, when stopped before anything could be saved


def configure_process() -> None:
    from .process import retain_freed_memory

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    retain_freed_memory()


class StopFlag:
    """Set by SIGTERM (StopTrainingJob, max runtime, spot interruption); polled by the loop."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        logger.warning("SIGTERM received: stopping after the current mini-batch and saving what was learnt.")
        self.requested = True


def _training_job(paths: Paths, stop: StopFlag, local_rank: int) -> None:
    """The training job (this process's rank of it): config and channels in, artifact out. Raises on failure."""
    from .gpus import require_usable_gpus, visible_gpus
    from .hyperparameters import parse_hyperparameters
    from .ranks import join_job

    hp = parse_hyperparameters(read_hyperparameters(paths))
    logger.info("Hyperparameters: %s", hp.to_json())
    require_usable_gpus(visible_gpus())  # a GPU host whose GPUs torch cannot use: fail, never train on its CPU
    channels = training_channels(paths)
    job = join_job(paths, local_rank)  # before reading: a host that fails to read is then seen by the others
    try:
        _train_rank(paths, stop, hp, channels, job)
    except BaseException:
        job.abandon()
        raise
    job.finish()


def _train_rank(paths: Paths, stop: StopFlag, hp: Hyperparameters, channels: dict[str, Path], job: Job) -> None:
    from .. import data, training
    from . import metrics

    series = data.read_channel(channels[TRAINING_CHANNEL], TRAINING_CHANNEL)
    validation = None
    if VALIDATION_CHANNEL in channels:
        validation = data.read_channel(channels[VALIDATION_CHANNEL], VALIDATION_CHANNEL)
        data.check_same_columns(validation, series[0].values.shape[1], series[0].name)
    checkpoint_dir = paths.checkpoint_dir if paths.checkpoint_dir.is_dir() else None
    result = training.train(series, hp, validation, device=job.device, checkpoint_dir=checkpoint_dir,
                            stop_requested=stop, on_epoch=metrics.emit_epoch if job.is_master else lambda report: None,
                            collective=job.collective)
    if not job.is_master:  # rank 0 alone writes the model; this host's model folder stays empty
        logger.info("Rank %d done: rank 0 (on %s) writes the model.", job.collective.rank.rank, job.hosts[0])
        return
    metrics.emit_final(result.summary.metrics)
    try:
        result.predictor.save(paths.model_dir)
    except OSError as exc:  # a full volume or a read-only folder: the job's storage, not our bug
        raise UserError(f"Cannot write the model to {paths.model_dir} ({exc.strerror or exc}). Give the training "
                        "job more storage (VolumeSizeInGB) or a writable model folder.") from exc
    summary = result.summary
    logger.info("Model written to %s (%d epochs, best epoch %d%s).", paths.model_dir, summary.epochs_run,
                summary.best_epoch, ", interrupted by SIGTERM" if summary.interrupted else "")
    logger.info("%s", result.predictor.rows_needed_text())


def run_train(paths: Paths, stop: StopFlag, local_rank: int = 0) -> int:
    """Run the training job (as this host's `local_rank`); 0 on success, else the exit code after writing
    the failure file (local rank 0 writes the host's; another local rank only logs the reason)."""
    record = local_rank == 0
    try:
        _training_job(paths, stop, local_rank)
    except UserError as exc:
        return _fail(paths, str(exc), EXIT_USER_ERROR, record=record)
    except ClusterError as exc:  # another rank failed or is unreachable: its own log says why
        return _fail(paths, str(exc), EXIT_ALGORITHM_ERROR, record=record)
    except TrainingStopped as exc:
        return _fail(paths, f"{exc} Nothing was saved; run the job again (with a checkpoint folder to resume).",
                     EXIT_STOPPED, record=record)
    except Exception as exc:  # anything else is our bug: say so, keep the traceback for the log
        return _fail(paths, f"Algorithm error ({type(exc).__name__}: {exc}). This is a bug in LSTM-AD; please "
                     "report it with the training log.", EXIT_ALGORITHM_ERROR, traceback.format_exc(), record)
    return EXIT_OK


def train() -> None:
    """Entry point of `train`; exits 0 on success, non-zero with /opt/ml/output/failure otherwise."""
    stop = StopFlag()
    stop.install()  # first: a SIGTERM while torch loads is a clean stop, not a kill
    configure_process()
    exit_process(run_train(Paths(base_dir()), stop))


def exit_process(code: int) -> None:
    """sys.exit, except in a process of a distributed job: there torch 2.1's process-group threads can abort
    ("terminate called without an active exception") or hang the interpreter's exit once another rank has
    gone, so the process ends at once, with its output flushed (the model and failure file are written)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _fail(paths: Paths, reason: str, code: int, details: str = "", record: bool = True) -> int:
    from ..predictor import ARTIFACT_FILES

    if not record:  # a host's other local ranks: its `train` process owns the model folder and failure file
        logger.error("Training failed: %s", reason)
        return code
    for name in ARTIFACT_FILES:  # no partial artifact may be uploaded (and on a full disk, room is freed)
        with contextlib.suppress(OSError):  # a read-only folder holds no partial artifact of ours either
            (paths.model_dir / name).unlink(missing_ok=True)
    write_failure(paths, reason, details)
    logger.error("Training failed: %s", reason)
    if details:
        logger.error("%s", details)
    return code


def serve() -> None:
    """Entry point of `serve`: gunicorn + Flask on port 8080 (see server.py)."""
    from .server import main

    configure_process()  # gunicorn's workers are forked from this process and inherit it
    main()
