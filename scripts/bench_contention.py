"""How the image trains and serves when another process competes for the CPU, per OpenMP wait policy.

    python3 scripts/bench_contention.py --image lstm-ad:ci-py310 [--image lstm-ad:ci-slim] [--quick]

For each image, without and with a competing busy process on the host (a `while True: pass`
Python loop: one core's worth), and for the image's default OMP_WAIT_POLICY (PASSIVE) and
`-e OMP_WAIT_POLICY=ACTIVE` (OpenMP's spinning default, i.e. an image without the setting):

- micro:  ms per training step (forward, backward, Adam) of a 2-layer, 32-unit LSTM on a batch of
          128 windows of 100 rows, with 2 torch threads: the kernel-level case where spinning
          OpenMP threads collapse under contention;
- train:  s per epoch of the real `train` command (`epoch N/M done in X s` lines), with the
          algorithm's own threading (one single-threaded replica per core);
- serve:  ms for one 32,768-row CSV request to the real `serve` (median of 5, after a warm-up).

Every container runs with --network none. Prints one line per measurement
(`image=... contention=... omp=... micro_ms=... train_s_per_epoch=... serve_32k_ms=...`),
then a Markdown table for docs/image-and-publishing.md. Needs Docker; no Python packages.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NETWORK = ["--network", "none"]
ROWS_32K = 32_768
TRAIN_ROWS = 40_000  # about 2 s per epoch on a 2-core VM: well above the log's 0.1 s resolution

MICRO = r"""
import sys, time, torch
torch.manual_seed(0)
torch.set_num_threads(2)
steps = int(sys.argv[1])
lstm = torch.nn.LSTM(2, 32, num_layers=2, batch_first=True)
head = torch.nn.Linear(32, 2)
params = list(lstm.parameters()) + list(head.parameters())
optimizer = torch.optim.Adam(params, lr=1e-3)
x = torch.randn(128, 100, 2)
times = []
for _ in range(steps + 1):
    started = time.perf_counter()
    optimizer.zero_grad()
    out, _ = lstm(x[:, :-1])
    loss = torch.nn.functional.mse_loss(head(out), x[:, 1:])
    loss.backward()
    optimizer.step()
    times.append(time.perf_counter() - started)
print(f"micro_ms={1000 * sorted(times[1:])[len(times[1:]) // 2]:.1f}")
"""

SERVE_CLIENT = r"""
import statistics, sys, time, urllib.request
body = open("/tmp/series.csv", "rb").read()
def post():
    request = urllib.request.Request("http://127.0.0.1:8080/invocations", data=body,
                                     headers={"Content-Type": "text/csv", "Accept": "text/csv"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return response.read()
for _ in range(600):
    try:
        urllib.request.urlopen("http://127.0.0.1:8080/ping", timeout=5)
        break
    except OSError:
        time.sleep(0.1)
rows = len(post().splitlines())  # warm-up
assert rows == int(sys.argv[2]), rows
times = []
for _ in range(int(sys.argv[1])):
    started = time.perf_counter()
    post()
    times.append(time.perf_counter() - started)
print(f"serve_32k_ms={1000 * statistics.median(times):.0f}")
"""


def series_csv(rows: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(f"{math.sin(t / 6):.6f},{math.cos(t / 6) + 0.05 * rng.random():.6f}\n" for t in range(rows))


def docker(*args: str, timeout: float = 900, check: bool = True, stdin: str | None = None) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, input=stdin)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:6])} ... failed ({result.returncode}):\n"
                           f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result.stdout + result.stderr


def make_opt_ml(folder: Path, epochs: int) -> Path:
    config = folder / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(
        {"epochs": str(epochs), "early-stopping-patience": "0", "context-length": "100", "prediction-length": "10"}))
    (config / "inputdataconfig.json").write_text(
        '{"training": {"ContentType": "text/csv", "TrainingInputMode": "File", '
        '"S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}}')
    (config / "resourceconfig.json").write_text(
        '{"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}')
    (folder / "input" / "data" / "training").mkdir(parents=True)
    (folder / "input" / "data" / "training" / "train.csv").write_text(series_csv(TRAIN_ROWS, 1))
    (folder / "model").mkdir()
    (folder / "output").mkdir()
    return folder


def env_args(policy: str | None) -> list[str]:
    return ["-e", f"OMP_WAIT_POLICY={policy}"] if policy else []


def micro(image: str, policy: str | None, steps: int) -> float:
    out = docker("run", "--rm", "-i", "--name", f"lstm-ad-bench-micro-{os.getpid()}", *NETWORK, *env_args(policy),
                 "--entrypoint", "python3", image,
                 "-", str(steps), stdin=MICRO)
    return float(re.search(r"micro_ms=([\d.]+)", out).group(1))


def train(image: str, policy: str | None, work: Path, epochs: int) -> tuple[float, Path]:
    folder = make_opt_ml(work / f"train-{policy or 'default'}-{time.monotonic_ns()}", epochs)
    out = docker("run", "--rm", "--name", f"lstm-ad-bench-train-{os.getpid()}", *NETWORK, *env_args(policy),
                 "-v", f"{folder}:/opt/ml", image, "train")
    seconds = [float(s) for s in re.findall(r"epoch \d+/\d+ done in ([\d.]+)s", out)]
    if not seconds:
        raise RuntimeError(f"no epoch lines in the training log:\n{out[-2000:]}")
    later = seconds[1:] or seconds  # the first epoch also pays one-off start-up costs
    return statistics.median(later), folder / "model"


def serve(image: str, policy: str | None, model: Path, work: Path, requests: int) -> float:
    data = work / "series-32k.csv"
    if not data.exists():
        data.write_text(series_csv(ROWS_32K, 3))
    name = f"lstm-ad-bench-serve-{os.getpid()}"
    docker("rm", "-f", name, check=False)
    docker("run", "-d", "--name", name, *NETWORK, *env_args(policy), "-v", f"{model}:/opt/ml/model:ro",
           "-v", f"{data}:/tmp/series.csv:ro", image, "serve")
    try:
        out = docker("exec", "-i", name, "python3", "-", str(requests), str(ROWS_32K), stdin=SERVE_CLIENT)
    finally:
        docker("rm", "-f", name, check=False)
    return float(re.search(r"serve_32k_ms=([\d.]+)", out).group(1))


class BusyLoop:
    """One competing single-threaded process on the host, stopped by its own pid."""

    def __enter__(self) -> subprocess.Popen[bytes]:
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self.process

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # run the clean-up (busy loop, containers) as for Ctrl-C


def remove_containers() -> None:
    for kind in ("micro", "train", "serve"):
        docker("rm", "-f", f"lstm-ad-bench-{kind}-{os.getpid()}", check=False)


def main() -> int:
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        return measure()
    finally:
        remove_containers()


def measure() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", action="append", required=True, help="image to measure (repeatable)")
    parser.add_argument("--quick", action="store_true", help="fewer steps, epochs and requests")
    args = parser.parse_args()
    if shutil.which("docker") is None:
        sys.exit("bench_contention: no docker client on PATH")
    steps, epochs, requests = (5, 3, 3) if args.quick else (10, 4, 5)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs ({cpu_model()}), "
          f"load average {os.getloadavg()[0]:.2f} before; micro {steps} steps, train {epochs} epochs of "
          f"{TRAIN_ROWS} rows (context 100, prediction 10, defaults otherwise), serve {requests} requests "
          f"of {ROWS_32K} rows", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lstm-ad-bench-") as tmp:
        work = Path(tmp)
        for image in args.image:
            for contention in (False, True):
                for policy in (None, "ACTIVE"):
                    label = "PASSIVE (image default)" if policy is None else "ACTIVE (-e)"
                    busy = BusyLoop() if contention else None
                    if busy:
                        busy.__enter__()
                    try:
                        m = micro(image, policy, steps)
                        t, model = train(image, policy, work, epochs)
                        s = serve(image, policy, model, work, requests)
                    finally:
                        if busy:
                            busy.__exit__()
                    load = os.getloadavg()[0]
                    line = (f"image={image} contention={'busy-loop' if contention else 'none'} "
                            f"omp={policy or 'PASSIVE'} micro_ms={m:.1f} train_s_per_epoch={t:.2f} "
                            f"serve_32k_ms={s:.0f} loadavg_1min_after={load:.2f}")
                    print(line, flush=True)
                    rows.append((image, "1 busy process" if contention else "none", label, m, t, s))
        # root-owned files written by the containers: remove them from inside one
        docker("run", "--rm", *NETWORK, "-v", f"{work}:/work", "--entrypoint", "sh", args.image[0], "-c",
               "rm -rf /work/*", check=False)
    print("\n| image | competing load | OMP_WAIT_POLICY | LSTM step, 2 threads (ms) | train (s/epoch) "
          "| serve 32k rows (ms) |")
    print("|---|---|---|---:|---:|---:|")
    for image, load, label, m, t, s in rows:
        print(f"| `{image}` | {load} | {label} | {m:.1f} | {t:.2f} | {s:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
