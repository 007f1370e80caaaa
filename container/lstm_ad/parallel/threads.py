"""Data-parallel gradients on CPU threads: one network replica per core, one piece of the mini-batch each.

PyTorch's CPU LSTM kernels use several cores poorly at LSTM-AD's sizes: one step of a
32-unit layer on a batch of 128 is a tiny matrix product, and splitting it over two
threads is slower than running it on one. Two single-threaded replicas that each take
half of the mini-batch do run side by side, so on CPU the mini-batch is cut into one
piece per core and the pieces' gradients are summed into the network.

Each piece's loss is weighted by its part of the mini-batch, so the summed gradient
is the gradient of the whole mini-batch's mean loss: the optimiser takes the same step
as with one replica, up to float rounding (which depends on the number of replicas, so
results are reproducible for a given seed and replica count).

This serves a job of one process on CPU (measured faster than DDP between local processes on the same
cores: docs/benchmarks.md, "Distributed training"); a job of several ranks uses DistributedDataParallel
(ranks.py). ("Shard" is kept for what SageMaker calls a channel split between hosts: ShardedByS3Key.)
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch
from torch import nn

logger = logging.getLogger(__name__)

MIN_PIECE_WINDOWS = 16  # below this a piece's matrix products are too small to be worth a core

# (network, windows) -> (mean squared error to minimise, mean absolute error to report)
LossFunction = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def replica_count(device: torch.device, batch_size: int, dropout: float, cores: int | None = None) -> int:
    """How many replicas (threads, pieces of each mini-batch) to use: 1 on GPU, else about one per core.

    Dropout draws its masks from torch's one global random stream; replicas drawing from it
    side by side would do so in a different order on every run, so dropout keeps one replica
    and training stays reproducible for a given seed.
    """
    if device.type != "cpu" or dropout > 0:
        return 1
    cores = cores if cores is not None else torch.get_num_threads()
    return max(1, min(cores, batch_size // MIN_PIECE_WINDOWS))


@contextmanager
def single_threaded_kernels(active: bool) -> Iterator[None]:
    """Run torch's kernels on one thread per calling thread while `active`; restore afterwards."""
    before = torch.get_num_threads()
    if active:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ThreadReplicas:
    """Computes a mini-batch's loss and gradient in `replicas` pieces, one network replica per thread.

    Use as a context manager (it owns a thread pool). Replica 0 is the network itself and
    runs on the calling thread; the others are copies refreshed from it before every batch.
    """

    def __init__(self, network: nn.Module, replicas: int):
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        self.network = network
        self.replicas = [network] + [copy.deepcopy(network) for _ in range(replicas - 1)]
        self._pool = (ThreadPoolExecutor(replicas - 1, thread_name_prefix="lstm-ad-replica",
                                         initializer=torch.set_num_threads, initargs=(1,))
                      if replicas > 1 else None)

    def __enter__(self) -> ThreadReplicas:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __call__(self, loss: LossFunction, windows: torch.Tensor) -> tuple[float, float]:
        """Set the network's .grad to the gradient of the mean loss over `windows`.

        Returns the mini-batch's mean squared and mean absolute error.
        """
        if self._pool is None:  # one replica
            squared, absolute = self._backward(self.network, windows, loss, len(windows))
            return squared / len(windows), absolute / len(windows)
        pieces = [p for p in windows.tensor_split(len(self.replicas)) if len(p)]
        replicas = self.replicas[:len(pieces)]
        self._refresh(replicas[1:])
        others = [self._pool.submit(self._backward, r, p, loss, len(windows))
                  for r, p in zip(replicas[1:], pieces[1:], strict=True)]
        sums = [self._backward(replicas[0], pieces[0], loss, len(windows))] + [f.result() for f in others]
        self._sum_gradients(replicas[1:])
        return sum(s[0] for s in sums) / len(windows), sum(s[1] for s in sums) / len(windows)

    @staticmethod
    def _backward(replica: nn.Module, piece: torch.Tensor, loss: LossFunction, batch: int
                  ) -> tuple[float, float]:
        """Gradient of this piece's part of the mini-batch loss; returns its windows' sums of their mean
        squared and mean absolute errors (the means times the piece's windows)."""
        for parameter in replica.parameters():
            parameter.grad = None
        mse, mae = loss(replica, piece)
        (mse * (len(piece) / batch)).backward()
        return mse.item() * len(piece), mae.item() * len(piece)

    def _refresh(self, replicas: list[nn.Module]) -> None:
        with torch.no_grad():
            for replica in replicas:
                replica.train(self.network.training)
                for mine, theirs in zip(self.network.parameters(), replica.parameters(), strict=True):
                    theirs.copy_(mine)

    def _sum_gradients(self, replicas: list[nn.Module]) -> None:
        with torch.no_grad():
            for replica in replicas:
                for mine, theirs in zip(self.network.parameters(), replica.parameters(), strict=True):
                    if theirs.grad is not None:
                        mine.grad = theirs.grad.clone() if mine.grad is None else mine.grad.add_(theirs.grad)
