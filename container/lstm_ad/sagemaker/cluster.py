"""The training job's hosts and processes, read from resourceconfig.json and the environment.

SageMaker starts the image on hosts algo-1 ... algo-N and writes `resourceconfig.json` on each
(`current_host`, `hosts`, `network_interface_name`). Every host runs `local_size` processes: one per
GPU, else one (`LSTM_AD_PROCESSES_PER_HOST` overrides both). The first process of `train` on a host
is its local rank 0 and starts the others (`python -m lstm_ad.sagemaker.local_rank K`).

Environment (documented in docs/distributed-training.md):
  LSTM_AD_MASTER_PORT         the first host's rendezvous port (default 29500)
  LSTM_AD_DIST_TIMEOUT        seconds a rank waits for the others, at the start and in every collective
                              (default 600)
  LSTM_AD_HOST_ADDRESSES      host=address pairs ("algo-1=127.0.0.1,algo-2=127.0.0.1") for hosts the
                              name service does not know (local tests); default: the host names themselves
  LSTM_AD_PROCESSES_PER_HOST  processes per host (default: the number of GPUs, else 1)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .environment import EnvironmentNumbers
from .paths import Paths, read_json

DEFAULT_MASTER_PORT = 29500
DEFAULT_TIMEOUT_S = 600.0
SHARDED = "ShardedByS3Key"


@dataclass(frozen=True)
class ResourceConfig:
    current_host: str
    hosts: tuple[str, ...]
    network_interface_name: str | None


def read_resource_config(paths: Paths) -> ResourceConfig:
    """resourceconfig.json; one host (algo-1) when absent, as for `train` run by hand."""
    raw = read_json(paths.resource_config_file, None)
    if raw is None:
        return ResourceConfig("algo-1", ("algo-1",), None)
    hosts = raw.get("hosts") if isinstance(raw, dict) else None
    current = raw.get("current_host") if isinstance(raw, dict) else None
    if not (isinstance(hosts, list) and hosts and all(isinstance(h, str) for h in hosts)
            and isinstance(current, str) and current in hosts):
        raise UserError(f"{paths.resource_config_file} must hold `hosts` (a list of host names) and "
                        f"`current_host` (one of them), as SageMaker writes it; got {json_preview(raw)}.")
    interface = raw.get("network_interface_name")
    return ResourceConfig(current, tuple(hosts), interface if isinstance(interface, str) else None)


def channel_is_sharded(paths: Paths, channel: str) -> bool:
    """Whether SageMaker gave each host only its share of the channel's files (S3DistributionType)."""
    config = read_json(paths.input_data_config_file, None)
    entry = config.get(channel) if isinstance(config, dict) else None
    return isinstance(entry, dict) and entry.get("S3DistributionType") == SHARDED


@dataclass(frozen=True)
class ClusterSettings:
    master_port: int
    timeout_s: float
    addresses: dict[str, str]
    processes_per_host: int | None  # None: one per GPU, else one


def cluster_settings(environ: Mapping[str, str] = os.environ) -> ClusterSettings:
    """The LSTM_AD_* settings above, every bad value reported with the fix."""
    read = EnvironmentNumbers(environ)
    port = read.integer("LSTM_AD_MASTER_PORT", DEFAULT_MASTER_PORT, 1, 65535)
    timeout = read.number("LSTM_AD_DIST_TIMEOUT", DEFAULT_TIMEOUT_S, 1)
    per_host = read.integer("LSTM_AD_PROCESSES_PER_HOST", 1, 1) if read.is_set("LSTM_AD_PROCESSES_PER_HOST") else None
    problems = read.problems
    addresses = {}
    for pair in filter(None, (p.strip() for p in environ.get("LSTM_AD_HOST_ADDRESSES", "").split(","))):
        host, _, address = pair.partition("=")
        if not host.strip() or not address.strip():
            problems.append(f"LSTM_AD_HOST_ADDRESSES: {pair!r} is not host=address")
        addresses[host.strip()] = address.strip()
    if problems:
        raise UserError("Invalid distributed-training settings: " + "; ".join(problems) + ".")
    return ClusterSettings(port, timeout, addresses, per_host)


def network_interface_settings(config: ResourceConfig, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME from resourceconfig.json's interface, unless set, or the
    interface does not exist here (a local test, where the host names map to loopback)."""
    name = config.network_interface_name
    if not name or not Path("/sys/class/net", name).exists() or environ.get("LSTM_AD_HOST_ADDRESSES"):
        return {}
    return {key: name for key in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME") if key not in environ}


def json_preview(value: object) -> str:
    import json

    return json.dumps(value)[:120]
