"""Training state that survives a stop: early-stopping bookkeeping and resumable checkpoints.

A checkpoint is a numpy archive of plain arrays plus JSON numbers (tensor_files.py: nothing
in it can execute code), written atomically after every epoch. It is resumed only when it was written for the
same hyperparameters and column count; otherwise it is ignored with a warning.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from .adam import Adam
from .hyperparameters import Hyperparameters
from .tensor_files import UnreadableTensorFile, load_tensors, save_tensors

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "lstm-ad-checkpoint.npz"


@dataclass
class TrainingState:
    epoch: int  # epochs completed
    generator: torch.Generator  # shuffling order
    best_loss: float = float("inf")
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    epochs_without_improvement: int = 0

    @classmethod
    def fresh(cls, seed: int) -> TrainingState:
        generator = torch.Generator()
        generator.manual_seed(seed)
        return cls(epoch=0, generator=generator)

    def record(self, calibration_loss: float, network: torch.nn.Module) -> None:
        """Note the epoch's calibration loss; keep a copy of the weights when it is the best."""
        if calibration_loss < self.best_loss:
            self.best_loss, self.best_epoch = calibration_loss, self.epoch
            self.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in network.state_dict().items()})
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1

    def patience_exhausted(self, patience: int) -> bool:
        return patience > 0 and self.epochs_without_improvement >= patience


class Checkpointer:
    """Writes and resumes `lstm-ad-checkpoint.npz` in a folder (see tensor_files.py: no pickle)."""

    def __init__(self, folder: Path, hp: Hyperparameters, columns: int):
        self.path = folder / CHECKPOINT_FILE
        self.fingerprint = json.dumps({"hyperparameters": hp.to_json(), "columns": columns}, sort_keys=True)

    def save(self, network: torch.nn.Module, optimizer: Adam, state: TrainingState) -> None:
        tensors = {
            **_prefixed("network", network.state_dict()),
            **_prefixed("best", state.best_state or {}),
            **_prefixed("optimizer", optimizer.state_tensors()),
            "generator": state.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        meta = {
            "fingerprint": self.fingerprint,
            "epoch": state.epoch,
            "best_loss": state.best_loss,
            "best_epoch": state.best_epoch,
            "epochs_without_improvement": state.epochs_without_improvement,
        }
        try:
            save_tensors(self.path, tensors, meta)
        except OSError as exc:  # e.g. a full volume: a lost checkpoint must not end the training
            logger.warning("Could not write checkpoint %s (%s); training goes on without it.", self.path, exc)
            return
        logger.info("Checkpoint written: %s (epoch %d)", self.path, state.epoch)

    def load(self, network: torch.nn.Module, optimizer: Adam) -> TrainingState | None:
        """Restore network, optimizer and state from the checkpoint, if there is a matching one."""
        if not self.path.is_file():
            return None
        try:
            tensors, meta = load_tensors(self.path)
        except UnreadableTensorFile as exc:  # a damaged checkpoint must not stop a fresh start
            logger.warning("Ignoring unreadable checkpoint %s: %s", self.path, exc)
            return None
        if meta.get("fingerprint") != self.fingerprint:
            logger.warning("Ignoring checkpoint %s: it was written for other hyperparameters or data "
                           "columns; training from scratch.", self.path)
            return None
        network.load_state_dict(_unprefixed("network", tensors))
        # lr follows from the hyperparameters, which the fingerprint fixed.
        optimizer.load_state_tensors(_unprefixed("optimizer", tensors))
        torch.set_rng_state(tensors["torch_rng"])
        generator = torch.Generator()
        generator.set_state(tensors["generator"])
        best_state = _unprefixed("best", tensors) or None
        state = TrainingState(
            epoch=int(meta["epoch"]), generator=generator, best_loss=float(meta["best_loss"]),
            best_epoch=int(meta["best_epoch"]), best_state=best_state,
            epochs_without_improvement=int(meta["epochs_without_improvement"]),
        )
        logger.info("Resuming from checkpoint %s after epoch %d", self.path, state.epoch)
        return state


def _prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{name}": value for name, value in tensors.items()}


def _unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key[len(prefix) + 1:]: value for key, value in tensors.items() if key.startswith(prefix + ".")}
