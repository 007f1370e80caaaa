"""Training throughput on one CPU machine: thread replicas (parallel/threads.py) against DDP over local processes.

The ECG example configuration of scripts/bench_speed.py (one generated series of 23,000 rows,
1,830 training subsequences per epoch, batch-size 128), trained through `lstm_ad.training.train`
in four set-ups, one after the other in one run:

  threads x1   one process, one torch thread, one replica
  threads x2   one process, mini-batches cut into 2 pieces on 2 single-threaded replicas (today's CPU path)
  DDP x1       one process in a gloo process group of one, DistributedDataParallel (the distributed code path)
  DDP x2       two processes (gloo on loopback), one thread each, each half of every global mini-batch

Throughput = training subsequences per second over epochs 2..N (the first is warm-up), each epoch
including its calibration pass, as the `train` entrypoint runs it. The set-ups take turns for
`--rounds` rounds (a shared machine's load drifts); each row is the median of its rounds, with the
range. Prints one row per set-up and the ratios of the medians.

    .venv/bin/python scripts/bench_distributed.py                          # 6 epochs, 3 rounds
    .venv/bin/python scripts/bench_distributed.py --epochs 2 --rounds 1    # quick (tests)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import ECG, ROWS, ecg_like  # noqa: E402
from lstm_ad import split, subsequences, training  # noqa: E402
from lstm_ad.data import Series  # noqa: E402
from lstm_ad.parallel.collectives import Collective, ProcessGroup, Rank, Rendezvous  # noqa: E402
from lstm_ad.sagemaker.cli import exit_process  # noqa: E402
from lstm_ad.sagemaker.process import retain_freed_memory  # noqa: E402


def throughput(threads: int, epochs: int, collective: Collective | None = None) -> float:
    """Subsequences per second of epochs 2..epochs of `train` in this process."""
    torch.set_num_threads(threads)
    hp = dataclasses.replace(ECG, epochs=epochs)
    series = [Series("ecg", ecg_like(ROWS))]
    ends: list[float] = []
    training.train(series, hp, device=torch.device("cpu"), collective=collective,
                   on_epoch=lambda report: ends.append(time.perf_counter()))
    windows = len(subsequences.SubsequenceSampler(
        [series[0].values[:split.split_point(ROWS, hp.calibration_fraction)]], hp, torch.device("cpu")))
    return windows * (len(ends) - 1) / (ends[-1] - ends[0])


def ddp_rank(rank: int, world: int, port: int, epochs: int) -> float:
    group = ProcessGroup.join(Rank(host=rank, hosts=world), torch.device("cpu"),
                              Rendezvous("127.0.0.1", port, 120, "gloo"))
    try:
        return throughput(1, epochs, group)
    finally:
        group.leave()


def ddp(world: int, epochs: int) -> float:
    """Start `world` processes of this script as ranks; the throughput rank 0 measured."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [subprocess.Popen([sys.executable, __file__, "--rank", str(r), "--world", str(world), "--port",
                                   str(port), "--epochs", str(epochs)], env=environment, stdout=subprocess.PIPE,
                                  text=True) for r in range(world)]
    outputs = [p.communicate()[0] for p in processes]
    if any(p.returncode for p in processes):
        raise SystemExit(f"a DDP rank failed: {[p.returncode for p in processes]}")
    return float(json.loads(outputs[0].strip().splitlines()[-1])["throughput"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--world", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    retain_freed_memory()
    if args.rank is not None:
        print(json.dumps({"throughput": ddp_rank(args.rank, args.world, args.port, args.epochs)}))
        # Ended as `train` ends a rank (cli.exit_process): a normal interpreter exit can abort in torch 2.x's
        # process-group threads ("terminate called without an active exception") once the other rank has gone.
        exit_process(0)
    load = os.getloadavg()[0]
    setups = {"threads x1": lambda: throughput(1, args.epochs), "threads x2": lambda: throughput(2, args.epochs),
              "DDP x1": lambda: ddp(1, args.epochs), "DDP x2": lambda: ddp(2, args.epochs)}
    runs: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(args.rounds):
        for name, measure in setups.items():
            runs[name].append(measure())
    rows = {name: statistics.median(values) for name, values in runs.items()}
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {os.cpu_count()} CPUs, load average {load:.1f} at the start and "
          f"{os.getloadavg()[0]:.1f} at the end, torch {torch.__version__}, {args.epochs} epochs (throughput over "
          f"epochs 2..{args.epochs}), median of {args.rounds} round(s)")
    for name, value in rows.items():
        print(f"{name:<12} {value:9.0f} subsequences/s  (range {min(runs[name]):.0f}-{max(runs[name]):.0f})")
    print(f"ratio DDP x2 / threads x2: {rows['DDP x2'] / rows['threads x2']:.2f}")
    print(f"ratio DDP x2 / threads x1: {rows['DDP x2'] / rows['threads x1']:.2f}")
    print(f"ratio DDP x1 / threads x1: {rows['DDP x1'] / rows['threads x1']:.2f}")


if __name__ == "__main__":
    main()
