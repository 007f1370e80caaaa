"""Who this process is in a training job of several processes, and the few collectives training needs.

A job of N ranks is `hosts` hosts x `local_size` processes each (one per GPU, or as many as asked on
CPU); rank = host * local_size + local_rank. Rank 0 (local rank 0 of the first host) is the master:
it serves the rendezvous (torch's TCP store) and alone writes the model, checkpoints and metrics.

A channel's files are either on every host (SageMaker's FullyReplicated) or split between hosts
(ShardedByS3Key). The processes that hold the same files are a `Share`: all ranks for a replicated
channel, the ranks of one host for a sharded one. Work on whole files (scoring, statistics) is dealt
round-robin inside a share, so that every file is counted once when the ranks' sums are added up.

`Collective` is the interface training uses, and itself the one-process job (every collective is the
identity, so one process computes exactly what it computed before distributed training existed);
`ProcessGroup` is torch.distributed (gloo on CPU, NCCL on GPU). Every collective either returns within
the process group's timeout or raises `ClusterError`: a peer that died, or cannot be reached, ends the
job with a reason, never a hang.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from ..errors import ClusterError

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Rank:
    """This process's place in the job."""

    host: int = 0  # index of this host in the job's host list
    hosts: int = 1
    local_rank: int = 0  # index of this process on its host
    local_size: int = 1  # processes per host

    @property
    def rank(self) -> int:
        return self.host * self.local_size + self.local_rank

    @property
    def world_size(self) -> int:
        return self.hosts * self.local_size

    @property
    def is_master(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class Share:
    """The ranks that hold the same files of a channel, and this rank's place among them."""

    position: int  # this rank's index in its share
    members: int  # ranks in the share
    group: int  # which share (the host, for a sharded channel)
    groups: int  # how many shares hold different files

    def mine(self, items: Sequence[T]) -> list[T]:
        """The items (files, parts) this rank works on: round-robin within the share."""
        return list(items[self.position::self.members])


def share_of(rank: Rank, sharded: bool) -> Share:
    if sharded:
        return Share(rank.local_rank, rank.local_size, rank.host, rank.hosts)
    return Share(rank.rank, rank.world_size, 0, 1)


class Collective:
    """The collectives of a job of one process (the identity); `ProcessGroup` is the real one."""

    def __init__(self, rank: Rank = Rank(), training_sharded: bool = False, validation_sharded: bool = False):
        self.rank = rank
        self.training = share_of(rank, training_sharded)
        self.validation = share_of(rank, validation_sharded)

    @property
    def size(self) -> int:
        return self.rank.world_size

    def sum(self, values: np.ndarray | Sequence[float]) -> np.ndarray:
        """Element-wise sum over all ranks, in float64."""
        return np.array(values, dtype=np.float64)

    def gather(self, values: np.ndarray) -> np.ndarray:
        """Every rank's 1-D float64 array, concatenated in rank order (lengths may differ)."""
        return np.asarray(values, dtype=np.float64).ravel()

    def gather_ints(self, value: int) -> list[int]:
        """One integer from each rank, in rank order."""
        return [value]

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one."""
        return flag

    def wrap(self, network: torch.nn.Module) -> torch.nn.Module:
        """The network as the gradient step sees it (DistributedDataParallel in a job of several ranks)."""
        return network

    def backward(self, loss: torch.Tensor) -> None:
        """Backpropagate; in a job of several ranks the gradients are averaged over them on the way."""
        loss.backward()

    def leave(self) -> None:
        """End this process's part in the job (after success)."""


@dataclass(frozen=True)
class Rendezvous:
    """Where and how the ranks meet: the master's address and port, the backend and the timeout."""

    master_address: str
    master_port: int
    timeout_s: float
    backend: str  # "gloo" (CPU) or "nccl" (GPU)


class ProcessGroup(Collective):
    """torch.distributed's default process group; join() makes one."""

    def __init__(self, rank: Rank, device: torch.device, rendezvous: Rendezvous,
                 training_sharded: bool = False, validation_sharded: bool = False):
        super().__init__(rank, training_sharded, validation_sharded)
        self.device = device
        self.rendezvous = rendezvous

    @classmethod
    def join(cls, rank: Rank, device: torch.device, rendezvous: Rendezvous,
             training_sharded: bool = False, validation_sharded: bool = False) -> ProcessGroup:
        """Join the job's process group; raises ClusterError when the ranks do not all arrive in time."""
        address = f"tcp://{rendezvous.master_address}:{rendezvous.master_port}"
        logger.info("Joining the process group as rank %d of %d (host %d of %d, local rank %d of %d) at %s, "
                    "backend %s, timeout %g s", rank.rank, rank.world_size, rank.host + 1, rank.hosts,
                    rank.local_rank, rank.local_size, address, rendezvous.backend, rendezvous.timeout_s)
        try:
            torch.distributed.init_process_group(
                rendezvous.backend, init_method=address, rank=rank.rank, world_size=rank.world_size,
                timeout=datetime.timedelta(seconds=rendezvous.timeout_s))
        except (RuntimeError, ValueError, OSError) as exc:  # DistStoreError and DistNetworkError included
            raise ClusterError(
                f"Rank {rank.rank} of {rank.world_size} could not join the training cluster at {address} within "
                f"{rendezvous.timeout_s:g} s: {_first_line(exc)}. Every host must start and reach the first "
                "host on that port; see the other hosts' logs.") from exc
        group = cls(rank, device, rendezvous, training_sharded, validation_sharded)
        group._barrier()  # every rank has connected: a rank missing now is missing, not late
        logger.info("All %d ranks joined.", rank.world_size)
        return group

    def sum(self, values: np.ndarray | Sequence[float]) -> np.ndarray:
        array = np.array(values, dtype=np.float64)
        tensor = torch.from_numpy(array.reshape(-1)).to(self.device)
        self._collective(torch.distributed.all_reduce, tensor)
        return tensor.cpu().numpy().reshape(array.shape)

    def gather(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64).ravel()
        lengths = self.gather_ints(len(values))
        padded = torch.zeros(max(lengths), dtype=torch.float64, device=self.device)
        padded[:len(values)] = torch.from_numpy(values).to(self.device)
        parts = [torch.empty_like(padded) for _ in lengths]
        self._collective(torch.distributed.all_gather, parts, padded)
        return np.concatenate([part[:n].cpu().numpy() for part, n in zip(parts, lengths, strict=True)])

    def gather_ints(self, value: int) -> list[int]:
        mine = torch.tensor([value], dtype=torch.int64, device=self.device)
        parts = [torch.empty_like(mine) for _ in range(self.size)]
        self._collective(torch.distributed.all_gather, parts, mine)
        return [int(part.item()) for part in parts]

    def any(self, flag: bool) -> bool:
        return bool(self.sum([1.0 if flag else 0.0])[0] > 0)

    def wrap(self, network: torch.nn.Module) -> torch.nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        # DDP broadcasts rank 0's weights to every rank here, and averages the gradients in backward().
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(network, device_ids=device_ids)

    def backward(self, loss: torch.Tensor) -> None:
        """loss.backward(), whose gradient all-reduce (DDP's) may find a peer gone: ClusterError."""
        self._collective(torch.Tensor.backward, loss)

    def leave(self) -> None:
        # A last all-reduce: every rank got here, none still waits for a peer. The process group is not
        # destroyed: under torch 2.1, destroy_process_group() can hang for good, and the process abort when
        # it exits normally, once another rank has exited; the shell ends such a process with os._exit
        # (cli.exit_process).
        self._barrier()

    def _barrier(self) -> None:
        self.sum([0.0])  # an all-reduce, not barrier(): NCCL's barrier guesses a device

    def _collective(self, operation: Callable[..., object], *args: object) -> None:
        try:
            operation(*args)
        except RuntimeError as exc:  # gloo: connection closed or timed out; NCCL: the watchdog's abort
            raise ClusterError(
                f"Rank {self.rank.rank} lost contact with another rank of the training job: {_first_line(exc)}. "
                "Another host failed, was stopped or cannot be reached (its log and failure file say why); "
                f"the process group's timeout is {self.rendezvous.timeout_s:g} s.") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
