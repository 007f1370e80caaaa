"""This process's rank in the training job: joining the process group, and the host's other processes.

`join_job` turns resourceconfig.json and the LSTM_AD_* settings (cluster.py) into a Collective
(lstm_ad/parallel/collectives.py): the one-process identity for a job of one host and one process, else
torch.distributed's process group, with rank 0 at the first host of `hosts`. On a host of several
processes (one per GPU), local rank 0 is the `train` process SageMaker started: it starts the others
itself (`python -m lstm_ad.sagemaker.local_rank K`, same environment and job folder) before joining,
and waits for them at the end.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field

import torch

from ..errors import ClusterError, UserError
from ..parallel.collectives import Collective, ProcessGroup, Rank, Rendezvous
from .cluster import (
    channel_is_sharded,
    cluster_settings,
    network_interface_settings,
    read_resource_config,
)
from .paths import TRAINING_CHANNEL, VALIDATION_CHANNEL, Paths

logger = logging.getLogger(__name__)


@dataclass
class Job:
    collective: Collective
    device: torch.device | None  # None: training picks (the GPU when there is one)
    hosts: tuple[str, ...] = ("algo-1",)
    local_ranks: list[subprocess.Popen[bytes]] = field(default_factory=list)  # started by this process
    timeout_s: float = 0.0

    @property
    def is_master(self) -> bool:
        return self.collective.rank.is_master

    def finish(self) -> None:
        """After success: the last collective; local rank 0 waits for the host's other processes."""
        self.collective.leave()
        for child in self.local_ranks:
            try:
                code = child.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                child.kill()
                code = child.wait()
            if code != 0:
                raise ClusterError(f"Local rank {self.local_ranks.index(child) + 1} of this host exited with code "
                                   f"{code} after training (its log lines say why).")

    def abandon(self) -> None:
        """After a failure: stop the host's other processes (they would lose contact anyway)."""
        for child in self.local_ranks:
            if child.poll() is None:
                child.terminate()
        for child in self.local_ranks:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


def join_job(paths: Paths, local_rank: int = 0) -> Job:
    """Join the training job as this host's `local_rank`; see the module doc."""
    config = read_resource_config(paths)
    settings = cluster_settings()
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    local_size = settings.processes_per_host or max(1, gpus)
    if gpus and local_size > gpus:
        raise UserError(f"LSTM_AD_PROCESSES_PER_HOST={local_size}, but this host has {gpus} GPU(s): one process "
                        "per GPU at most. Lower it, or leave it unset for one process per GPU.")
    rank = Rank(host=config.hosts.index(config.current_host), hosts=len(config.hosts),
                local_rank=local_rank, local_size=local_size)
    if rank.world_size == 1:
        return Job(Collective(), None, config.hosts)
    device = torch.device("cuda", local_rank) if gpus else torch.device("cpu")
    if gpus:
        torch.cuda.set_device(device)
    for key, value in network_interface_settings(config).items():
        os.environ[key] = value  # read by gloo and NCCL when the process group starts
    # NCCL aborts a collective that outlives the timeout only with async error handling (both names:
    # torch 2.1 reads the first, later versions the second).
    os.environ.setdefault("NCCL_ASYNC_ERROR_HANDLING", "1")
    os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    children = _start_local_ranks(paths, local_size) if local_rank == 0 and local_size > 1 else []
    job = Job(Collective(), device, config.hosts, children, settings.timeout_s)
    master = settings.addresses.get(config.hosts[0], config.hosts[0])
    rendezvous = Rendezvous(master, settings.master_port, settings.timeout_s, "nccl" if gpus else "gloo")
    try:
        job.collective = ProcessGroup.join(rank, device, rendezvous,
                                           training_sharded=channel_is_sharded(paths, TRAINING_CHANNEL),
                                           validation_sharded=channel_is_sharded(paths, VALIDATION_CHANNEL))
    except BaseException:
        job.abandon()
        raise
    return job


def _start_local_ranks(paths: Paths, local_size: int) -> list[subprocess.Popen[bytes]]:
    environment = {**os.environ, "SAGEMAKER_BASE_DIR": str(paths.base)}
    logger.info("Starting local ranks 1 to %d of this host.", local_size - 1)
    return [subprocess.Popen([sys.executable, "-m", "lstm_ad.sagemaker.local_rank", str(k)], env=environment)
            for k in range(1, local_size)]
