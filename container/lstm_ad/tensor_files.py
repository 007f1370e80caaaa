"""Tensors on disk in a format that cannot execute code: `.npz` read with allow_pickle=False.

`torch.load` unpickles, and before torch 2.6 even `weights_only=True` could be made to run
code (CVE-2025-32434); the image's torch 2.1 has that flaw. Model weights and checkpoints are
therefore numpy archives of plain numeric arrays plus one JSON text entry, and numpy refuses
any object (pickled) array inside them. Files appear atomically (written aside, then renamed).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

META_KEY = "__meta__"  # a 0-d unicode array holding JSON: no pickle needed


class UnreadableTensorFile(ValueError):
    """The file is missing, truncated, not an .npz, or holds something other than plain arrays."""


def save_tensors(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any] | None = None) -> None:
    """Write `tensors` (names without '/') and optional JSON-able `meta` to `path` atomically."""
    arrays = {name: tensor.detach().cpu().numpy() for name, tensor in tensors.items()}
    if META_KEY in arrays:
        raise ValueError(f"{META_KEY} is reserved")
    arrays[META_KEY] = np.array(json.dumps(meta or {}))
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as file:
        np.savez(file, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds too narrowly
    os.replace(partial, path)


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, meta) from a file written by `save_tensors`; UnreadableTensorFile says what is wrong."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise UnreadableTensorFile(f"{path} does not exist") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # numpy raises ValueError for object arrays ("Object arrays cannot be loaded when allow_pickle=False")
        raise UnreadableTensorFile(f"{path} is not a plain numeric .npz archive "
                                   f"({type(exc).__name__}: {exc})") from None
    try:
        meta = json.loads(str(arrays.pop(META_KEY)))
    except (KeyError, ValueError):
        raise UnreadableTensorFile(f"{path} has no readable {META_KEY} entry") from None
    tensors = {}
    for name, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise UnreadableTensorFile(f"{path}: entry {name!r} holds {array.dtype}, not numbers")
        tensors[name] = torch.from_numpy(np.ascontiguousarray(array))
    return tensors, meta
