"""Does `retain_freed_memory` (glibc mmap/trim thresholds, lstm_ad/sagemaker/process.py) help on this torch?

Runs the same LSTM training step (one replica's piece of the ECG example configuration: 64 windows of
100 steps, 2 layers of 32 units, one thread) in fresh processes with the C library's defaults
and with the setting, and prints minor page faults and milliseconds per step for each, with
the ratio. Run it with each interpreter whose torch the image may carry, e.g.

    .venv/bin/python scripts/bench_allocator.py              # development torch
    /var/cache/lstm-ad/venv-py310-torch21/bin/python scripts/bench_allocator.py   # torch 2.1 (test_compat.sh)

The entrypoints keep the setting only if it helps on both (docs/benchmarks.md has the figures).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from statistics import median

CONTAINER = Path(__file__).resolve().parents[1] / "container"

STEP = textwrap.dedent("""
    import json, resource, sys, time, torch
    sys.path.insert(0, sys.argv[1])
    from lstm_ad.sagemaker.process import retain_freed_memory
    torch.set_num_threads(1)
    if sys.argv[2] == "retain" and not retain_freed_memory():
        sys.exit("the allocator setting could not be applied (not glibc?)")
    torch.manual_seed(0)
    lstm, head = torch.nn.LSTM(1, 32, 2, batch_first=True), torch.nn.Linear(32, 10)
    optimizer = torch.optim.Adam([*lstm.parameters(), *head.parameters()], lr=1e-3)
    x = torch.randn(64, 110, 1)
    def step():
        optimizer.zero_grad(set_to_none=True)
        head(lstm(x[:, :100])[0]).square().mean().backward()
        optimizer.step()
    for _ in range(3):
        step()
    steps = int(sys.argv[3])
    faults, started = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for _ in range(steps):
        step()
    print(json.dumps({"faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps,
                      "ms": (time.perf_counter() - started) * 1000 / steps}))
""")


def measure(mode: str, steps: int) -> dict[str, float]:
    result = subprocess.run([sys.executable, "-c", STEP, str(CONTAINER), mode, str(steps)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="training steps timed per process")
    parser.add_argument("--repeats", type=int, default=3, help="processes per mode (medians are printed)")
    args = parser.parse_args()
    import torch  # only for the version line

    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {args.repeats} x {args.steps} steps per mode")
    found = {}
    for mode in ("default", "retain"):
        runs = [measure(mode, args.steps) for _ in range(args.repeats)]
        found[mode] = {key: median(run[key] for run in runs) for key in ("faults", "ms")}
        each = ", ".join(f"{run['ms']:.2f}" for run in runs)
        print(f"{mode:8s} page faults/step {found[mode]['faults']:9.1f}   ms/step {found[mode]['ms']:7.2f}   "
              f"(runs: {each})")
    print(f"retain/default: time {found['retain']['ms'] / found['default']['ms']:.2f}x, "
          f"page faults {found['retain']['faults'] / max(found['default']['faults'], 1e-9):.3f}x")


if __name__ == "__main__":
    main()
