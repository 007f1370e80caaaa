"""The host's NVIDIA GPUs, counted from /dev, and whether this torch can use them.

SageMaker gives a container the GPUs of its instance as /dev/nvidia0, /dev/nvidia1, ... Whether torch
can use them depends on the image (a CUDA build of torch) and the host's driver (new enough for that
CUDA). Training refuses to run on the CPU of a GPU host: the job would bill GPU hours at CPU speed, with
nothing in the log to say so. Serving falls back to the CPU with a warning instead (server.py): inference
is CPU work for this model, and SageMaker's GPU inference hosts run an old driver by default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from ..errors import UserError


def visible_gpus(environ: Mapping[str, str] = os.environ, dev: Path = Path("/dev")) -> int:
    """GPUs this process may use, counted without initialising CUDA: the CUDA runtime does not survive
    a fork once initialised, and the serve workers are forked from the process that counts."""
    devices = len([p for p in dev.glob("nvidia*") if p.name[len("nvidia"):].isdigit()])
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        listed = visible.split(",")[:devices]
        return len([d for d in listed if d.strip() and not d.strip().startswith("-")])
    return devices


def require_usable_gpus(gpus: int) -> None:
    """Raise a UserError when the host has `gpus` GPUs (> 0) that this torch cannot use; else nothing.

    Imports torch: call it in the training process, never in serve's master before the fork."""
    import torch

    if gpus == 0 or torch.cuda.is_available():
        return
    if torch.version.cuda is None:
        build, reason = f"torch {torch.__version__} is a CPU-only build", "it has no CUDA support"
    else:
        build = f"torch {torch.__version__} is built for CUDA {torch.version.cuda}"
        reason = _cuda_init_error(torch) or "CUDA reports no usable device"
    raise UserError(
        f"This host has {gpus} NVIDIA GPU{'s' if gpus > 1 else ''} (/dev/nvidia*), but {build} and cannot use "
        f"{'them' if gpus > 1 else 'it'} ({reason}); training on the CPU would bill GPU hours at CPU speed. "
        "Use the image's GPU build on a GPU instance (its CUDA must suit the host's NVIDIA driver), or a CPU "
        "instance type such as ml.m5 or ml.c5 (or set CUDA_VISIBLE_DEVICES to an empty value in the job's "
        "environment to train on the CPU anyway).")


def _cuda_init_error(torch: ModuleType) -> str:
    """The first line of the error CUDA's initialisation raises (e.g. a driver too old), or ''."""
    try:
        torch.cuda.init()
    except Exception as exc:  # RuntimeError from the driver; AssertionError from a CPU-only build
        return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return ""
