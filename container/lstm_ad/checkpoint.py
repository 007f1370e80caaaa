"""Training state that survives a stop: early-stopping bookkeeping and resumable checkpoints.

A checkpoint is a plain dict of tensors and numbers (loadable with weights_only=True),
written atomically after every epoch. It is resumed only when it was written for the
same hyperparameters and column count; otherwise it is ignored with a warning.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import Hyperparameters

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "lstm-ad-checkpoint.pt"


@dataclass
class TrainingState:
    epoch: int  # epochs completed
    generator: torch.Generator  # shuffling order
    best_loss: float = float("inf")
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    epochs_without_improvement: int = 0
    history: list[float] = field(default_factory=list)  # calibration loss per epoch

    @classmethod
    def fresh(cls, seed: int) -> TrainingState:
        generator = torch.Generator()
        generator.manual_seed(seed)
        return cls(epoch=0, generator=generator)

    def record(self, calibration_loss: float, network: torch.nn.Module) -> None:
        """Note the epoch's calibration loss; keep a copy of the weights when it is the best."""
        self.history.append(calibration_loss)
        if calibration_loss < self.best_loss:
            self.best_loss, self.best_epoch = calibration_loss, self.epoch
            self.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in network.state_dict().items()})
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1

    def patience_exhausted(self, patience: int) -> bool:
        return patience > 0 and self.epochs_without_improvement >= patience


class Checkpointer:
    def __init__(self, folder: Path, hp: Hyperparameters, columns: int):
        self.path = folder / CHECKPOINT_FILE
        self.fingerprint = json.dumps({"hyperparameters": hp.to_json(), "columns": columns}, sort_keys=True)

    def save(self, network: torch.nn.Module, optimizer: torch.optim.Optimizer, state: TrainingState) -> None:
        payload: dict[str, Any] = {
            "fingerprint": self.fingerprint,
            "epoch": state.epoch,
            "network": network.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": state.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "best_loss": state.best_loss,
            "best_epoch": state.best_epoch,
            "best_state": state.best_state,
            "epochs_without_improvement": state.epochs_without_improvement,
            "history": state.history,
        }
        partial = self.path.with_name(self.path.name + ".partial")
        torch.save(payload, partial)
        os.replace(partial, self.path)
        logger.info("Checkpoint written: %s (epoch %d)", self.path, state.epoch)

    def load(self, network: torch.nn.Module, optimizer: torch.optim.Optimizer) -> TrainingState | None:
        """Restore network, optimizer and state from the checkpoint, if there is a matching one."""
        if not self.path.is_file():
            return None
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged checkpoint must not stop a fresh start
            logger.warning("Ignoring unreadable checkpoint %s: %s", self.path, exc)
            return None
        if payload.get("fingerprint") != self.fingerprint:
            logger.warning("Ignoring checkpoint %s: it was written for other hyperparameters or data "
                           "columns; training from scratch.", self.path)
            return None
        network.load_state_dict(payload["network"])
        optimizer.load_state_dict(payload["optimizer"])
        torch.set_rng_state(payload["torch_rng"])
        generator = torch.Generator()
        generator.set_state(payload["generator"])
        state = TrainingState(
            epoch=int(payload["epoch"]), generator=generator, best_loss=float(payload["best_loss"]),
            best_epoch=int(payload["best_epoch"]), best_state=payload["best_state"],
            epochs_without_improvement=int(payload["epochs_without_improvement"]),
            history=[float(x) for x in payload["history"]],
        )
        logger.info("Resuming from checkpoint %s after epoch %d", self.path, state.epoch)
        return state
