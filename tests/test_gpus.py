"""A GPU host whose GPUs torch cannot use: `train` fails with the reason instead of training on the CPU.

The end-to-end test gives the real `train` a fake /dev/nvidia0: an overlay on /dev in a private mount
namespace (root only; skipped, with the reason, where unshare or mount is not allowed). The image's own
smoke test does the same with `docker run -v file:/dev/nvidia0` (scripts/docker_smoke_test.sh).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_HYPERPARAMETERS, make_opt_ml, sine_series
from lstm_ad.errors import UserError
from lstm_ad.sagemaker.gpus import require_usable_gpus

pytestmark = pytest.mark.slow  # every test here starts `train` (a process)

BIN = Path(sys.executable).parent
FAKE_GPU_HOST = ('set -e; t=$(mktemp -d); mount -t tmpfs tmp "$t"; mkdir "$t/upper" "$t/work"; '
                 'mount -t overlay overlay -o "lowerdir=/dev,upperdir=$t/upper,workdir=$t/work" /dev; '
                 'touch /dev/nvidia0; exec "$@"')


def on_fake_gpu_host(command: list[str]) -> list[str]:
    return ["unshare", "--mount", "--propagation", "private", "bash", "-c", FAKE_GPU_HOST, "_", *command]


def expected_reason(gpus: int) -> str:
    """What this machine's torch (CPU-only in .venv; the CUDA build without a driver in the compat venv) says."""
    noun, them = ("GPU", "it") if gpus == 1 else ("GPUs", "them")
    if torch.version.cuda is None:
        head = f"torch {torch.__version__} is a CPU-only build and cannot use {them} (it has no CUDA support)"
    else:
        head = f"torch {torch.__version__} is built for CUDA {torch.version.cuda} and cannot use"
    return f"This host has {gpus} NVIDIA {noun} (/dev/nvidia*), but {head}"


def test_no_gpus_or_usable_ones_pass() -> None:
    require_usable_gpus(0)
    if torch.cuda.is_available():  # a real GPU machine
        require_usable_gpus(torch.cuda.device_count())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine's GPUs are usable")
@pytest.mark.parametrize("gpus", [1, 4])
def test_unusable_gpus_are_a_user_error_with_the_reason_and_the_fix(gpus: int) -> None:
    with pytest.raises(UserError) as info:
        require_usable_gpus(gpus)
    message = str(info.value)
    assert message.startswith(expected_reason(gpus)), message
    assert message.endswith("training on the CPU would bill GPU hours at CPU speed. Use the image's GPU build on a "
                            "GPU instance (its CUDA must suit the host's NVIDIA driver), or a CPU instance type "
                            "such as ml.m5 or ml.c5 (or set CUDA_VISIBLE_DEVICES to an empty value in the job's "
                            "environment to train on the CPU anyway)."), message


def can_fake_a_gpu_host() -> str | None:
    """None when a private mount namespace with a fake /dev/nvidia0 can be made here, else why not."""
    if shutil.which("unshare") is None:
        return "no unshare here"
    result = subprocess.run(on_fake_gpu_host(["test", "-e", "/dev/nvidia0"]), capture_output=True, text=True)
    return None if result.returncode == 0 else f"cannot overlay /dev here: {result.stderr.strip()[:200]}"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine's GPUs are usable")
def test_train_on_a_gpu_host_it_cannot_use_fails_with_a_failure_file(tmp_path: Path) -> None:
    why_not = can_fake_a_gpu_host()
    if why_not:
        pytest.skip(why_not)
    base = make_opt_ml(tmp_path, TINY_HYPERPARAMETERS, {"training": {"series.csv": sine_series(300)}})
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(on_fake_gpu_host([str(BIN / "train")]), env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    failure = (base / "output" / "failure").read_text()
    assert failure.startswith(expected_reason(1)) and "Traceback" not in failure, failure
    assert len(failure) <= 1024  # all of it is the job's FailureReason
    assert failure.strip() in result.stdout  # the log says it too
    assert "epoch 1/" not in result.stdout and not any((base / "model").iterdir())
    assert not Path("/dev/nvidia0").exists() or torch.cuda.is_available()  # the host's /dev is untouched

    # Training on that host's CPU on purpose: hide the GPUs (SageMaker's Environment, `docker run -e`).
    (base / "output" / "failure").unlink()
    result = subprocess.run(on_fake_gpu_host([str(BIN / "train")]), env={**env, "CUDA_VISIBLE_DEVICES": ""},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (base / "model" / "model.json").is_file() and not (base / "output" / "failure").exists()
