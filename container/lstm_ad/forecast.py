"""Streaming error vectors of a series, computed in chunks (docs/how-it-works.md, "The model").

For row t, the l predictions made for it at origins t-1, ..., t-l give the error
vector e_t = x_t - x̂_t in R^(l·d). The first `context_length` rows of a request are
warm-up and get no error vector.

Long series are cut into chunks at fixed multiples of `chunk_length` in the stream's
row numbering: from the request start, or, when the caller says which row of a longer
stream the request starts at (`first_row`, a live stream's requests), from the
stream's start. Each chunk is read from a zero state starting `context_length` rows
before its first scored row, and chunks are evaluated together as one batch (in
groups, so memory stays bounded). So a row's error vector depends only on the rows
from its chunk's warm-up on: a stream request that holds them gives the numbers of
one long request (bit for bit on CPU, measured: tests/test_scoring.py; the batch
size could change a GPU kernel's rounding), never depending on how the caller split
the work, and calibration uses this very function.

Missing values (NaN) are read as the network's own one-step prediction: one sequential
pass over the request from a zero state at its first row (`fill_gaps`) replaces each missing
entry of row t by the prediction of row t made after reading rows 0..t-1 (themselves filled);
a missing entry of the first row reads as 0, the column's training mean. The chunks then read
the filled series. Errors stay NaN where the true value is missing (at every horizon), so the
error model sees only what was observed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .model import LSTMForecaster

# LSTM steps evaluated at once: bounds memory per group. 2^16 keeps a group's LSTM state in the CPU
# caches: with the default network, 1M rows score ~25 % faster than with 2^18 (and results are the same).
DEFAULT_STEPS_PER_BATCH = 1 << 16


def default_chunk_length(context_length: int) -> int:
    """Long enough that warm-up costs at most 25 % extra, short enough to batch well."""
    return max(1024, 4 * context_length)


@dataclass(frozen=True)
class ForecastErrors:
    """Per-row results in standardised units; rows [0, first_scored_row) are NaN."""

    errors: np.ndarray  # (rows, prediction_length * columns); NaN also where the true value is missing
    one_step: np.ndarray  # (rows, columns): prediction of row t made at t-1
    first_scored_row: int  # rows before it are warm-up: min(context_length, rows)


def complete_rows(found: list[np.ndarray], dimension: int) -> np.ndarray:
    """The error vectors of `found` (one array (rows, `dimension`) per part) that miss no entry, in one float64
    array; (0, `dimension`) when there is no part (a rank with no file of its own in a distributed job)."""
    if not found:
        return np.empty((0, dimension))
    return np.concatenate([e[np.isfinite(e).all(axis=1)] for e in found]).astype(np.float64)


SHORT_STRETCH = 8  # observed rows between gaps read by the numpy step below rather than one nn.LSTM call


@torch.inference_mode()
def fill_gaps(network: LSTMForecaster, scaled: np.ndarray) -> np.ndarray:
    """`scaled` with every NaN replaced by the network's one-step prediction (see the module doc).

    The network reads long observed stretches between rows with gaps in one nn.LSTM call each, carrying
    its state, and short ones (densely gappy data) with a plain numpy LSTM step of the same weights,
    which costs far less per row than a call: cost grows with the rows that have gaps.
    """
    missing = np.isnan(scaled)
    if not missing.any():
        return scaled
    device = next(network.parameters()).device
    step = _NumpyStep(network)
    filled = np.array(scaled, dtype=np.float32)
    columns = scaled.shape[1]
    layers, size = network.config.num_layers, network.config.hidden_size
    h = np.zeros((layers, size), dtype=np.float32)
    c = np.zeros((layers, size), dtype=np.float32)
    position = 0
    for t in np.flatnonzero(missing.any(axis=1)).tolist():
        if t - position > SHORT_STRETCH:
            inputs = torch.from_numpy(filled[position:t]).to(device)[None]
            state = (torch.from_numpy(h[:, None]).to(device), torch.from_numpy(c[:, None]).to(device))
            _, (h_out, c_out) = network.lstm(inputs, state)
            h, c = h_out[:, 0].cpu().numpy(), c_out[:, 0].cpu().numpy()
        else:
            for row in range(position, t):
                step(filled[row], h, c)
        position = t
        prediction = step.predict(h[-1], columns) if t > 0 else np.zeros(columns, dtype=np.float32)
        filled[t, missing[t]] = prediction[missing[t]]
    return filled


class _NumpyStep:
    """One step of the network's nn.LSTM (gates i, f, g, o, as PyTorch orders them) and its head, in numpy."""

    def __init__(self, network: LSTMForecaster):
        def array(name: str) -> np.ndarray:
            return getattr(network.lstm, name).detach().cpu().numpy().astype(np.float32)

        layers = range(network.config.num_layers)
        self.w_ih = [array(f"weight_ih_l{k}") for k in layers]
        self.w_hh = [array(f"weight_hh_l{k}") for k in layers]
        self.bias = [array(f"bias_ih_l{k}") + array(f"bias_hh_l{k}") for k in layers]
        self.head_w = network.head.weight.detach().cpu().numpy().astype(np.float32)
        self.head_b = network.head.bias.detach().cpu().numpy().astype(np.float32)

    def __call__(self, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> None:
        """Read row `x`: update the states h, c (layers, hidden) in place."""
        inputs = x
        for k in range(len(self.w_ih)):
            gates = self.w_ih[k] @ inputs + self.w_hh[k] @ h[k] + self.bias[k]
            i, f, g, o = np.split(gates, 4)
            c[k] = _sigmoid(f) * c[k] + _sigmoid(i) * np.tanh(g)
            h[k] = _sigmoid(o) * np.tanh(c[k])
            inputs = h[k]

    def predict(self, top: np.ndarray, columns: int) -> np.ndarray:
        """The head's horizon-1 prediction from the top layer's state."""
        out: np.ndarray = self.head_w[:columns] @ top + self.head_b[:columns]
        return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (np.tanh(0.5 * x) + 1.0)  # no overflow warning for large |x|
    return out


@torch.inference_mode()
def forecast_errors(
    network: LSTMForecaster,
    scaled: np.ndarray,
    context_length: int,
    chunk_length: int,
    steps_per_batch: int = DEFAULT_STEPS_PER_BATCH,
    first_row: int = 0,
) -> ForecastErrors:
    """Error vectors and one-step predictions for every row of `scaled` (rows, columns); `first_row`: the
    number of its first row in the stream it is part of (chunk boundaries fall on multiples of
    `chunk_length` there)."""
    rows, columns = scaled.shape
    horizon = network.config.prediction_length
    c, length = context_length, chunk_length
    errors = np.full((rows, horizon * columns), np.nan, dtype=np.float32)
    one_step = np.full((rows, columns), np.nan, dtype=np.float32)
    if rows <= c:
        return ForecastErrors(errors, one_step, rows)
    observed = scaled  # the targets: NaN where missing
    scaled = fill_gaps(network, scaled)  # the inputs

    # Chunk k scores rows [max(k*L - shift, c), min((k+1)*L - shift, rows)), reading from c rows before its first.
    shift = first_row % length
    starts = np.arange((c + shift) // length, -(-(rows + shift) // length)) * length - shift
    firsts, ends = np.maximum(starts, c), np.minimum(starts + length, rows)
    span = c + length - 1  # input steps of a full chunk: warm-up plus all origins

    device = next(network.parameters()).device
    series = torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.float32)).to(device)
    truth = series if observed is scaled else torch.from_numpy(
        np.ascontiguousarray(observed, dtype=np.float32)).to(device)
    group = max(1, steps_per_batch // span)
    for start in range(0, len(firsts), group):
        g_first, g_end = firsts[start:start + group], ends[start:start + group]
        inputs = torch.zeros(len(g_first), span, columns, device=device)  # zero padding after the end
        targets = torch.zeros(len(g_first), length, columns, device=device)
        for i, (first, end) in enumerate(zip(g_first.tolist(), g_end.tolist(), strict=True)):
            inputs[i, : end - 1 - (first - c)] = series[first - c: end - 1]
            targets[i, : end - first] = truth[first:end]
        predictions = network(inputs)  # (group, span, horizon, columns)
        # Row first+j at horizon h was predicted at input position c+j-h.
        by_horizon = torch.stack(
            [predictions[:, c - h: c - h + length, h - 1] for h in range(1, horizon + 1)], dim=2
        )  # (group, length, horizon, columns)
        chunk_errors = (targets.unsqueeze(2) - by_horizon).flatten(2)  # (group, length, horizon*columns)
        valid = torch.arange(length, device=device)[None, :] < torch.as_tensor(
            g_end - g_first, device=device)[:, None]  # (group, length)
        lo, hi = int(g_first[0]), int(g_end[-1])  # chunks are contiguous, so rows lo..hi in order
        errors[lo:hi] = chunk_errors[valid].cpu().numpy()
        one_step[lo:hi] = by_horizon[:, :, 0][valid].cpu().numpy()
    return ForecastErrors(errors, one_step, c)
