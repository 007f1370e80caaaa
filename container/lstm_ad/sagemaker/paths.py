"""The /opt/ml layout: paths, config files, failure file.

Only this module knows where /opt/ml is. Every path hangs off a base folder, `SAGEMAKER_BASE_DIR`
(default /opt/ml), so the real entrypoints run unchanged in a temporary folder. (The shell's other
readers of the environment: settings.py, cluster.py and outputs.py, each for its own variables.)

`write_training_config` writes the config files as SageMaker does before it starts a container: the
one writer, beside the reader, for the local jobs (lstm_ad_local) and the tests; `train` never calls it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError

DEFAULT_BASE_DIR = "/opt/ml"
TRAINING_CHANNEL = "training"
VALIDATION_CHANNEL = "validation"
CHANNELS = {TRAINING_CHANNEL: True, VALIDATION_CHANNEL: False}  # name -> required
SUPPORTED_INPUT_MODES = ("File", "FastFile")


def base_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("SAGEMAKER_BASE_DIR") or DEFAULT_BASE_DIR)


@dataclass(frozen=True)
class Paths:
    """The /opt/ml layout, rooted anywhere."""

    base: Path

    @property
    def config_dir(self) -> Path:
        return self.base / "input" / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resource_config_file(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def data_dir(self) -> Path:
        return self.base / "input" / "data"

    def channel(self, name: str) -> Path:
        return self.data_dir / name

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def failure_file(self) -> Path:
        return self.base / "output" / "failure"

    @property
    def checkpoint_dir(self) -> Path:
        return self.base / "checkpoints"


def read_json(path: Path, default: Any) -> Any:
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from exc


def read_hyperparameters(paths: Paths) -> dict[str, Any]:
    """The raw hyperparameters (string values, as SageMaker writes them); {} when absent."""
    raw = read_json(paths.hyperparameters_file, {})
    if not isinstance(raw, dict):
        raise UserError(f"{paths.hyperparameters_file} must hold a JSON object of name -> value.")
    return raw


def training_channels(paths: Paths) -> dict[str, Path]:
    """The channels this job has, checked against inputdataconfig.json when present."""
    config = read_json(paths.input_data_config_file, None)
    names = set(config) if isinstance(config, dict) else (
        {p.name for p in paths.data_dir.iterdir() if p.is_dir()} if paths.data_dir.is_dir() else set())
    unknown = sorted(names - set(CHANNELS))
    if unknown:
        raise UserError(f"Unknown channel(s) {', '.join(unknown)}: this algorithm reads `{TRAINING_CHANNEL}` "
                        f"(required) and `{VALIDATION_CHANNEL}` (optional).")
    if TRAINING_CHANNEL not in names:
        raise UserError(f"The `{TRAINING_CHANNEL}` channel is missing: give the training job a channel named "
                        f"`{TRAINING_CHANNEL}` with CSV files.")
    for name, channel_config in (config or {}).items():
        if not isinstance(channel_config, dict):
            raise UserError(f"{paths.input_data_config_file}: the entry of channel `{name}` must be a JSON object "
                            f"(with TrainingInputMode, ContentType, ...), got {json.dumps(channel_config)[:60]}.")
        mode = channel_config.get("TrainingInputMode", "File")
        if mode not in SUPPORTED_INPUT_MODES:
            raise UserError(f"Channel `{name}` uses input mode {mode}; this algorithm reads whole files. "
                            "Use input mode File (or FastFile).")
    return {name: paths.channel(name) for name in sorted(names)}


def write_training_config(paths: Paths, channels: Iterable[str], hyperparameters: Mapping[str, object],
                          input_mode: str = "File", hosts: tuple[str, ...] = ("algo-1",),
                          current_host: str = "algo-1", distribution: str = "FullyReplicated") -> None:
    """hyperparameters.json, inputdataconfig.json, resourceconfig.json and the empty output folders.
    `distribution` is every channel's S3DistributionType (FullyReplicated or ShardedByS3Key)."""
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters_file.write_text(json.dumps({k: str(v) for k, v in hyperparameters.items()}, indent=1))
    paths.input_data_config_file.write_text(json.dumps({
        name: {"ContentType": "text/csv", "TrainingInputMode": input_mode, "S3DistributionType": distribution,
               "RecordWrapperType": "None"} for name in channels}, indent=1))
    paths.resource_config_file.write_text(json.dumps(
        {"current_host": current_host, "hosts": list(hosts), "network_interface_name": "eth0"}, indent=1))
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    (paths.base / "output" / "data").mkdir(parents=True, exist_ok=True)


def write_failure(paths: Paths, reason: str, details: str = "") -> bool:
    """The first line is the human reason (it becomes FailureReason); details follow.

    On a full disk the reason alone may still fit where reason and traceback do not; when not even
    that can be written, the reason goes to stderr (the job's log) and False is returned.
    """
    text = reason.strip() + ("\n\n" + details.strip() if details.strip() else "") + "\n"
    for attempt in (text, reason.strip() + "\n"):
        try:
            paths.failure_file.parent.mkdir(parents=True, exist_ok=True)
            paths.failure_file.write_text(attempt)
            return True
        except OSError as exc:
            problem = exc
    print(f"Could not write {paths.failure_file} ({problem}); the failure was: {reason}", file=sys.stderr)
    return False
