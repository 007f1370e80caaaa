"""This rank's part of every global mini-batch, and the gradient of the whole mini-batch from it.

Every rank draws the same shuffled order of all the job's training subsequences (one generator,
one seed), so every rank knows the global mini-batches, the same ones a single process would use.
The subsequences are numbered share by share (collectives.py: all ranks for a replicated channel,
host by host for a sharded one); of each global mini-batch a rank takes those of its share, cut into
one contiguous piece per rank of the share.

Gradient: in a job of several ranks the network is wrapped in DistributedDataParallel, which averages
the ranks' gradients; each rank weights its loss by (ranks x its windows / windows in the global
mini-batch), so the average is the gradient of the global mini-batch's mean loss: the optimiser takes
the step one process would take, up to float rounding. A rank without a window in a mini-batch still
takes part (DDP needs every rank in every all-reduce) with one zero window of weight 0.

In a job of one process the gradient comes from thread replicas (threads.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import ClusterError
from .collectives import Collective
from .threads import LossFunction, ThreadReplicas


class GlobalBatches:
    """The global mini-batches as this rank takes part in them. Use as a context manager (the one-process
    path owns a thread pool of `replicas` - 1 threads)."""

    def __init__(self, network: nn.Module, collective: Collective, subsequences: int, window_shape: tuple[int, int],
                 replicas: int = 1):
        self.collective = collective
        self.window_shape = window_shape  # (rows, columns) of one subsequence
        self.alone = collective.size == 1
        self.share = collective.training
        counts = collective.gather_ints(subsequences)
        local = collective.rank.local_size
        # Each share's count, read off its first rank: all ranks of a share hold the same files.
        firsts = [counts[0]] if self.share.groups == 1 else [counts[g * local] for g in range(self.share.groups)]
        members = counts if self.share.groups == 1 else counts[self.share.group * local:(self.share.group + 1) * local]
        if len(set(members)) != 1:
            raise ClusterError(f"The ranks that should hold the same training files found different numbers of "
                               f"subsequences ({members}): give every host the same files (FullyReplicated), or "
                               "use ShardedByS3Key.")
        self.total = sum(firsts)  # the job's subsequences
        self.offset = sum(firsts[:self.share.group])  # the number of this share's first subsequence
        self.count = subsequences
        self.model = collective.wrap(network)
        self._threads = ThreadReplicas(network, replicas if self.alone else 1)

    def __enter__(self) -> GlobalBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self._threads.__exit__(*exc)

    def mine(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's subsequences (indices into its own sampler) of the global mini-batch `batch`."""
        if self.alone:
            return batch
        inside = (batch >= self.offset) & (batch < self.offset + self.count)
        ours = batch[inside] - self.offset
        return ours.tensor_split(self.share.members)[self.share.position]

    def gradient(self, loss: LossFunction, windows: torch.Tensor, batch: int) -> tuple[float, float]:
        """Set the network's .grad to the gradient of the global mini-batch's mean loss (`batch` windows in
        all, `windows` of them here); returns this rank's windows' sums of their mean squared and mean
        absolute errors."""
        if self.alone:
            mean_squared, mean_absolute = self._threads(loss, windows)
            return mean_squared * len(windows), mean_absolute * len(windows)
        for parameter in self.model.parameters():
            parameter.grad = None
        weight = self.collective.size * len(windows) / batch
        if not len(windows):
            windows = torch.zeros((1, *self.window_shape), device=windows.device)
        squared, absolute = loss(self.model, windows)
        self.collective.backward(squared * weight)
        return (squared.item() * len(windows), absolute.item() * len(windows)) if weight else (0.0, 0.0)

    def stop(self, requested: Callable[[], bool]) -> bool:
        """Whether any rank was asked to stop (SIGTERM on any host stops them all at the same mini-batch)."""
        return self.collective.any(requested())

    def epoch_sums(self, squared_sum: float, absolute_sum: float) -> tuple[float, float]:
        """The epoch's sums (those of `gradient`) added up over all ranks."""
        if self.alone:
            return squared_sum, absolute_sum
        total = self.collective.sum([squared_sum, absolute_sum])
        return float(total[0]), float(total[1])
