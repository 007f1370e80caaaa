"""The one writer of an /opt/ml job folder, as SageMaker lays it out before it starts a container.

Used by the local training job (jobs.py) and by the tests. Hyperparameter values are
written as strings (`str(v)`, as the SDK v2 `Estimator` sends them).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from lstm_ad.sagemaker.paths import Paths


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


def link_channel(source: Path, target: Path) -> None:
    """Hard-link (cheap) or copy a file or folder into a channel folder, keeping the folder structure."""
    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:  # another file system, or links not allowed
            shutil.copy2(src, dst)

    target.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, copy_function=link_or_copy, dirs_exist_ok=True)
    else:
        link_or_copy(str(source), str(target / source.name))
