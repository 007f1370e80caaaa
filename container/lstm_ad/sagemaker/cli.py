"""Console scripts: `train` and `serve`, as SageMaker runs them (`docker run IMAGE train|serve`).

Process-wide settings (logging, the allocator) are configured here and only here. The
module imports nothing heavy: `train` installs its SIGTERM handler before torch loads,
so a job stopped in its first second still ends with a failure file.
`run_train(paths, stop)` is the whole training job as a function returning the exit code.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import traceback
from types import FrameType

from ..errors import TrainingStopped, UserError
from .paths import (
    TRAINING_CHANNEL,
    VALIDATION_CHANNEL,
    Paths,
    base_dir,
    check_single_host,
    read_hyperparameters,
    training_channels,
    write_failure,
)

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


def _training_job(paths: Paths, stop: StopFlag) -> None:
    """The training job: config and channels in, artifact out. Raises on failure."""
    from .. import data, training
    from . import metrics
    from .hyperparameters import parse_hyperparameters

    hp = parse_hyperparameters(read_hyperparameters(paths))
    logger.info("Hyperparameters: %s", hp.to_json())
    check_single_host(paths)
    channels = training_channels(paths)
    series = data.read_channel(channels[TRAINING_CHANNEL], TRAINING_CHANNEL)
    validation = None
    if VALIDATION_CHANNEL in channels:
        validation = data.read_channel(channels[VALIDATION_CHANNEL], VALIDATION_CHANNEL)
        data.check_same_columns(validation, series[0].values.shape[1], series[0].name)
    checkpoint_dir = paths.checkpoint_dir if paths.checkpoint_dir.is_dir() else None
    result = training.train(series, hp, validation, checkpoint_dir=checkpoint_dir, stop_requested=stop,
                            on_epoch=metrics.emit_epoch)
    metrics.emit_final(result.summary.metrics)
    try:
        result.predictor.save(paths.model_dir)
    except OSError as exc:  # a full volume or a read-only folder: the job's storage, not our bug
        raise UserError(f"Cannot write the model to {paths.model_dir} ({exc.strerror or exc}). Give the training "
                        "job more storage (VolumeSizeInGB) or a writable model folder.") from exc
    summary = result.summary
    logger.info("Model written to %s (%d epochs, best epoch %d%s).", paths.model_dir, summary.epochs_run,
                summary.best_epoch, ", interrupted by SIGTERM" if summary.interrupted else "")


def run_train(paths: Paths, stop: StopFlag) -> int:
    """Run the training job; 0 on success, else the exit code after writing the failure file."""
    try:
        _training_job(paths, stop)
    except UserError as exc:
        return _fail(paths, str(exc), EXIT_USER_ERROR)
    except TrainingStopped as exc:
        return _fail(paths, f"{exc} Nothing was saved; run the job again (with a checkpoint folder to resume).",
                     EXIT_STOPPED)
    except Exception as exc:  # anything else is our bug: say so, keep the traceback for the log
        return _fail(paths, f"Algorithm error ({type(exc).__name__}: {exc}). This is a bug in LSTM-AD; please "
                     "report it with the training log.", EXIT_ALGORITHM_ERROR, traceback.format_exc())
    return EXIT_OK


def train() -> None:
    """Entry point of `train`; exits 0 on success, non-zero with /opt/ml/output/failure otherwise."""
    stop = StopFlag()
    stop.install()  # first: a SIGTERM while torch loads is a clean stop, not a kill
    configure_process()
    sys.exit(run_train(Paths(base_dir()), stop))


def _fail(paths: Paths, reason: str, code: int, details: str = "") -> int:
    from ..predictor import ARTIFACT_FILES

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
