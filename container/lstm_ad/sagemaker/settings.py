"""Settings of the `serve` process, read from the environment in one place.

  SAGEMAKER_BIND_TO_PORT              TCP port on 0.0.0.0 (default 8080)
  SAGEMAKER_MODEL_SERVER_WORKERS      gunicorn worker processes (default: GPUs if any, else CPU cores);
    or MODEL_SERVER_WORKERS
  LSTM_AD_SERVER_THREADS              request threads per worker (default 2); /ping and /execution-parameters
                                      have threads of their own (HEALTH_THREADS), so busy ones never block them
  LSTM_AD_BODY_READ_TIMEOUT_S         seconds a request body may pause before the request is dropped (408)
                                      and its thread freed (default 30)
  LSTM_AD_TORCH_THREADS               torch intra-op threads per worker (default CPU cores / workers, >= 1)
  SAGEMAKER_MODEL_SERVER_TIMEOUT      seconds a request may take (default 3600, batch's maximum);
    or MODEL_SERVER_TIMEOUT
  SAGEMAKER_MAX_PAYLOAD_IN_MB         largest request body in MB (default 100, batch's maximum); 0 (batch's
                                      "no limit", sent with chunked encoding) removes the limit
  SAGEMAKER_MAX_CONCURRENT_TRANSFORMS advertised MaxConcurrentTransforms (default: the workers, fewer when
                                      that many maximum-size requests would not fit in memory)
  LSTM_AD_OUTPUT                      optional output columns of every answer, e.g. "alarm,attribution", or
                                      "none" (default: the model's `default-output`, usually none:
                                      `score,pred_1..pred_d`); a request may choose its own (outputs.py)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .environment import EnvironmentNumbers
from .outputs import ENV_VARIABLE, parse_outputs

DEFAULT_PORT = 8080
DEFAULT_TIMEOUT_S = 3600  # above the 600 s default (and at the 3600 s maximum) of batch invocations
GRACEFUL_TIMEOUT_S = 25  # SageMaker sends SIGKILL 30 s after SIGTERM
MAX_BATCH_PAYLOAD_MB = 100  # batch transform: MaxPayloadInMB <= 100 and x MaxConcurrentTransforms <= 100
MIN_ADVERTISED_PAYLOAD_MB = 6  # SageMaker's default: never advertise less
MB = 1024 * 1024
HEALTH_THREADS = 2  # per worker, for /ping and /execution-parameters only (see server.py)
DEFAULT_BODY_READ_TIMEOUT_S = 30
# Peak memory of one request per byte of CSV body: decoding, scoring and the answer together, the largest answer
# (alarm and attribution columns) included. scripts/bench_memory.py (peak resident set of a fresh worker-like
# process, 10 MB bodies), 2026-12-03: 16-18 (1 and 2 columns, the default output), 34-35 (38 columns), 38-49
# with alarm and attribution (two runs; docs/benchmarks.md, "Memory per request"), and a margin for the spread.
MEMORY_PER_BODY_BYTE = 52
MEMORY_SHARE = 0.8  # of the memory available at start, the part that concurrent requests may use


@dataclass(frozen=True)
class ServeSettings:
    port: int = DEFAULT_PORT
    workers: int = 1
    threads: int = 2
    torch_threads: int = 1
    timeout_s: int = DEFAULT_TIMEOUT_S
    max_payload_mb: int = MAX_BATCH_PAYLOAD_MB  # 0: no limit
    max_concurrent_transforms: int | None = None  # None: derived from workers and memory
    use_gpu: bool = False
    body_read_timeout_s: float = DEFAULT_BODY_READ_TIMEOUT_S
    memory_bytes: int | None = None  # available to the server at start; None: unknown (no memory bound)
    # Optional output columns unless a request chooses (LSTM_AD_OUTPUT); None: not set, the model's
    # default-output applies (server.py resolves it before the workers start).
    outputs: frozenset[str] | None = None

    @property
    def max_payload_bytes(self) -> int | None:
        return self.max_payload_mb * MB if self.max_payload_mb else None

    def execution_parameters(self) -> dict[str, int]:
        """The batch transform answer: concurrency x payload <= 100 (SageMaker's rule), and concurrent
        requests of the advertised payload fit in memory (MEMORY_PER_BODY_BYTE)."""
        concurrent = self.max_concurrent_transforms or self.workers
        limit = self.max_payload_mb or MAX_BATCH_PAYLOAD_MB
        payload = min(limit, MAX_BATCH_PAYLOAD_MB)
        if concurrent * payload > MAX_BATCH_PAYLOAD_MB:
            payload = min(max(MIN_ADVERTISED_PAYLOAD_MB, MAX_BATCH_PAYLOAD_MB // concurrent), limit)
            concurrent = max(1, min(concurrent, MAX_BATCH_PAYLOAD_MB // payload))
        if self.max_concurrent_transforms is None and self.memory_bytes is not None:
            fits = int(self.memory_bytes * MEMORY_SHARE) // (payload * MB * MEMORY_PER_BODY_BYTE)
            concurrent = max(1, min(concurrent, fits))
        return {"MaxConcurrentTransforms": concurrent, "MaxPayloadInMB": payload}


def available_memory_bytes(meminfo: Path = Path("/proc/meminfo"),
                           cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Memory this process may still use: the kernel's MemAvailable, capped by a cgroup limit if any."""
    found = []
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (("memory.max", "memory.current"),  # cgroup v2
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):  # v1
        try:
            limit = (cgroup / limit_file).read_text().strip()
            if limit.isdigit() and int(limit) < 1 << 60:
                found.append(int(limit) - int((cgroup / usage_file).read_text().strip()))
        except (OSError, ValueError):
            continue
    return max(0, min(found)) if found else None


def settings_from_env(environ: Mapping[str, str] = os.environ, cpus: int | None = None,
                      gpus: int = 0, memory_bytes: int | None = None) -> ServeSettings:
    """Parse the variables above; a UserError lists every bad one with its allowed range."""
    cpus = cpus or os.cpu_count() or 1
    read = EnvironmentNumbers(environ)
    port = read.integer("SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT, 1, 65535)
    workers = read.integer(("SAGEMAKER_MODEL_SERVER_WORKERS", "MODEL_SERVER_WORKERS"), gpus or cpus, 1, 256)
    threads = read.integer("LSTM_AD_SERVER_THREADS", 2, 1, 64)
    torch_threads = read.integer("LSTM_AD_TORCH_THREADS", max(1, cpus // workers), 1, 1024)
    timeout = read.integer(("SAGEMAKER_MODEL_SERVER_TIMEOUT", "MODEL_SERVER_TIMEOUT"), DEFAULT_TIMEOUT_S, 1, 86400)
    payload = read.integer("SAGEMAKER_MAX_PAYLOAD_IN_MB", MAX_BATCH_PAYLOAD_MB, 0, 10_000)
    concurrent = read.integer("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", 0, 0, 1000) or None
    body_timeout = read.integer("LSTM_AD_BODY_READ_TIMEOUT_S", DEFAULT_BODY_READ_TIMEOUT_S, 1, 3600)
    problems = read.problems
    outputs: frozenset[str] | None = None
    try:
        if environ.get(ENV_VARIABLE, "").strip():
            outputs = parse_outputs(environ[ENV_VARIABLE], ENV_VARIABLE)
    except UserError as exc:
        problems.append(str(exc).rstrip("."))
    if problems:
        raise UserError("Invalid server settings: " + "; ".join(problems) + ".")
    return ServeSettings(port=port, workers=workers, threads=threads, torch_threads=torch_threads,
                         timeout_s=timeout, max_payload_mb=payload, max_concurrent_transforms=concurrent,
                         use_gpu=gpus > 0, body_read_timeout_s=body_timeout, memory_bytes=memory_bytes,
                         outputs=outputs)
