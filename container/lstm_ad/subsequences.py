"""The training subsequences: where they start, which are skipped for a gap, and their loss.

Subsequences of context-length + prediction-length rows start every sequence-stride rows of a fitting part
(never crossing a file boundary); one that contains a missing value (in its inputs or its targets) is
skipped. The LSTM reads the first context-length rows from a zero state, and the loss is the MSE of every
l-step prediction made after a short burn-in against the true future rows.
"""

from __future__ import annotations

import numpy as np
import torch

from .hyperparameters import Hyperparameters


class SubsequenceSampler:
    """All training subsequences as (series offset + start) indices into one flat tensor."""

    def __init__(self, parts: list[np.ndarray], hp: Hyperparameters, device: torch.device):
        self.window = hp.context_length + hp.prediction_length
        self.flat = torch.from_numpy(np.concatenate(parts).astype(np.float32)).to(device)
        starts, offset, self.skipped = [], 0, 0
        for part in parts:
            first = np.arange(0, len(part) - self.window + 1, hp.sequence_stride)
            gaps = np.r_[0, np.cumsum(np.isnan(part).any(axis=1))]  # rows with a gap before each row
            complete = gaps[first + self.window] == gaps[first]
            self.skipped += int((~complete).sum())
            starts.append(offset + first[complete])
            offset += len(part)
        self.flat = torch.nan_to_num(self.flat)  # NaN only in skipped windows; keep them out of any arithmetic
        self.starts = torch.from_numpy(np.concatenate(starts)).to(device)
        self.steps = torch.arange(self.window, device=device)

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        """(batch, context + prediction length, columns) subsequences."""
        return self.flat[self.starts[indices, None] + self.steps]


def subsequence_loss(network: torch.nn.Module, windows: torch.Tensor, hp: Hyperparameters
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """MSE and MAE of all predictions made after the burn-in against the true future rows."""
    c, horizon = hp.context_length, hp.prediction_length
    predictions = network(windows[:, :c])  # (batch, c, horizon, columns)
    # Row t+h is the target of step t at horizon h: windows[:, t+1 : t+1+horizon]
    targets = windows[:, 1:].unfold(1, horizon, 1).permute(0, 1, 3, 2)  # (batch, c, horizon, columns)
    diff = predictions[:, hp.burn_in:] - targets[:, hp.burn_in:]
    return diff.square().mean(), diff.abs().mean()
