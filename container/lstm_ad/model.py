"""The LSTM forecaster of LSTM-AD: configuration and forward pass only.

A stacked LSTM reads the (standardised) series step by step; a linear head maps the
hidden state at every step t to `prediction_length x columns` values, the
predictions of rows t+1 ... t+l (Malhotra et al. 2015, section 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .hyperparameters import Hyperparameters


@dataclass(frozen=True)
class NetworkConfig:
    columns: int
    prediction_length: int
    hidden_size: int
    num_layers: int
    dropout: float

    @property
    def error_dimension(self) -> int:
        """Entries of a row's error vector: its l predictions of each of the d columns."""
        return self.prediction_length * self.columns


def network_config(hp: Hyperparameters, columns: int) -> NetworkConfig:
    """The network that `hp` describes for series of `columns` columns."""
    return NetworkConfig(columns, hp.prediction_length, hp.hidden_size, hp.num_layers, hp.dropout)


class LSTMForecaster(nn.Module):
    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(
            input_size=config.columns,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            # nn.LSTM drops out between layers; the last layer's output is dropped below,
            # so every LSTM layer is followed by dropout as the paper's set-up describes.
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.prediction_length * config.columns)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, steps, columns) -> predictions (batch, steps, prediction_length, columns).

        Output [b, t, k-1] is the prediction of row t+k made after reading rows 0..t.
        The state starts at zero for every sequence of the batch.
        """
        batch, steps, _ = x.shape
        hidden, _ = self.lstm(x)  # (batch, steps, hidden_size)
        out = self.head(self.dropout(hidden))  # (batch, steps, prediction_length * columns)
        return out.view(batch, steps, self.config.prediction_length, self.config.columns)
