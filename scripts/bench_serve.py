"""Benchmark the real `serve` (gunicorn + Flask) over loopback.

Trains a model with the product's default hyperparameters (one epoch by default: the
weights' values hardly change the cost of scoring) on 12,000 rows (so that all of 10,000 error centres are drawn
when `--hp error-centres=10000` asks for them) with the real `train`, starts the
real `serve`, and measures end-to-end request times with a keep-alive client:

  * latency of a 32,000-row univariate request (the size of the ECG test set), median
  * throughput of a 1,000,000-row request in rows/s, and each worker's peak RSS

plus an in-process breakdown (parse / score / format) of the large request.

With --cases, instead: what the default error model costs against the one Gaussian, on real data from
../shared/data, each request through one `serve` worker (one thread), the same LSTM (trained once per case
with seed 0: the scoring hyperparameters do not change training), medians of --repeat-cases requests, the
three models' servers running side by side and asked in interleaved rounds (so that load drift hits all three):

  ucr       a univariate UCR series (001_UCR_Anomaly_DISTORTED1sddb40): trained on its training part, its
            whole test part (45,000 rows) as one request
  fg        fg-sample's train.csv (2 columns); test.csv repeated to 35,000 rows
  smd       smd-dev machine-1-2 (38 columns); its test part (23,694 rows)

and prints per case the request time of the defaults, of `discord-refs` 0 (the one Gaussian and the score
window: the reference, whose ratio must stay within 2), of `error-centres` 10000 (the former default), and the
ratios.

    .venv/bin/python scripts/bench_serve.py [--hp hidden-size=64 ...] [--workers 2] [--repeat 20]
    .venv/bin/python scripts/bench_serve.py --cases [--repeat-cases 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

from lstm_ad.sagemaker.paths import Paths, write_training_config
from lstm_ad_local.errors import LocalJobError
from lstm_ad_local.server import LocalServer

BIN = Path(sys.executable).parent


def series(rows: int, columns: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(rows)[:, None]
    return np.sin(2 * np.pi * t / 250 + np.arange(columns)) + 0.05 * rng.standard_normal((rows, columns))


def csv_body(values: np.ndarray) -> bytes:
    return "\n".join(",".join(f"{v:.6f}" for v in row) for row in values.tolist()).encode() + b"\n"


def train(base: Path, hyperparameters: dict[str, str], columns: int, rows: int) -> None:
    paths = Paths(base)
    write_training_config(paths, ["training"], hyperparameters)
    paths.channel("training").mkdir(parents=True)
    (paths.channel("training") / "train.csv").write_bytes(csv_body(series(rows, columns)))
    subprocess.run([str(BIN / "train")], env={**os.environ, "SAGEMAKER_BASE_DIR": str(base)}, check=True,
                   stdout=subprocess.DEVNULL)


def start_server(base: Path, workers: int | None) -> LocalServer:
    environment = {"SAGEMAKER_MODEL_SERVER_WORKERS": str(workers)} if workers else {}
    server = LocalServer(base, [str(BIN / "serve")], environment, base / "serve.log")
    server.start()
    try:
        server.wait_until_ready(180)
    except LocalJobError as exc:
        server.stop()
        sys.exit(str(exc))
    return server


def timed_posts(session: requests.Session, url: str, body: bytes, repeat: int, rows: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = session.post(url + "/invocations", data=body, headers={"Content-Type": "text/csv"}, timeout=600)
        times.append(time.perf_counter() - started)
        if response.status_code != 200 or response.content.count(b"\n") != rows:
            sys.exit(f"bad answer {response.status_code}: {response.text[:300]}")
    return times


def worker_peak_rss_mb(master: int) -> dict[int, float]:
    """VmHWM (peak resident set) of each gunicorn worker, the master's children."""
    peaks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields.get("PPid", "0")) == master and "VmHWM" in fields:  # not a zombie (a killed worker)
            peaks[int(entry.name)] = int(fields["VmHWM"].split()[0]) / 1024
    return peaks


def breakdown(base: Path, body: bytes) -> dict[str, float]:
    """Parse / score / format of one body in this process, one torch thread (as a worker)."""
    import torch

    from lstm_ad.predictor import Predictor
    from lstm_ad.sagemaker.payloads import decode_csv, encode_csv

    torch.set_num_threads(1)
    predictor = Predictor.load(base / "model")
    predictor.score(np.zeros((predictor.context_length + 1, predictor.columns)))
    t0 = time.perf_counter()
    values = decode_csv(body)
    t1 = time.perf_counter()
    result = predictor.score(values)
    t2 = time.perf_counter()
    encode_csv(result)
    t3 = time.perf_counter()
    return {"parse_s": t1 - t0, "score_s": t2 - t1, "format_s": t3 - t2}


DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REFERENCE = {"discord-refs": "0"}
VARIANTS = {"default": {}, "one_gaussian": REFERENCE, "centres_10000": {"error-centres": "10000"}}


def case_data(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, request rows) of a --cases case, read from ../shared/data in place."""
    if name == "ucr":
        values = np.loadtxt(DATA / "ucr-dev" / "001_UCR_Anomaly_DISTORTED1sddb40_35000_52000_52620.txt")[:, None]
        return values[:35_000], values[35_000:]
    if name == "fg":
        train_rows = np.loadtxt(DATA / "fg-sample" / "train.csv", delimiter=",")
        test = np.loadtxt(DATA / "fg-sample" / "test.csv", delimiter=",")
        return train_rows, np.tile(test, (7, 1))  # 35,000 rows
    folder = DATA / "smd-dev"
    return (np.loadtxt(folder / "train" / "machine-1-2.txt", delimiter=","),
            np.loadtxt(folder / "test" / "machine-1-2.txt", delimiter=","))


def train_on(base: Path, hyperparameters: dict[str, str], values: np.ndarray) -> None:
    paths = Paths(base)
    write_training_config(paths, ["training"], hyperparameters)
    paths.channel("training").mkdir(parents=True)
    np.savetxt(paths.channel("training") / "train.csv", values, delimiter=",", fmt="%.9g")
    subprocess.run([str(BIN / "train")], env={**os.environ, "SAGEMAKER_BASE_DIR": str(base)}, check=True,
                   stdout=subprocess.DEVNULL)


def run_cases(repeat: int, epochs: str) -> None:
    """The --cases report (see the module doc)."""
    if not DATA.is_dir():
        sys.exit(f"SKIPPED: {DATA} is absent; --cases reads ../shared/data")
    environment = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "LSTM_AD_SERVER_THREADS": "1", "LSTM_AD_TORCH_THREADS": "1"}
    for case in ("ucr", "fg", "smd"):
        train_rows, request = case_data(case)
        body = csv_body(request)
        times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        with tempfile.TemporaryDirectory(prefix=f"bench-serve-{case}-") as folder:
            servers = {}
            try:
                for variant, overrides in VARIANTS.items():
                    base = Path(folder) / variant
                    train_on(base, {"epochs": epochs, "seed": "0", **overrides}, train_rows)
                    servers[variant] = LocalServer(base, [str(BIN / "serve")], environment, base / "serve.log")
                    servers[variant].start()
                sessions = {variant: requests.Session() for variant in VARIANTS}
                for variant, server in servers.items():
                    server.wait_until_ready(180)
                    timed_posts(sessions[variant], server.url, body, 1, len(request))  # warm up
                # Interleaved rounds, one request per model each: a change of the machine's load between models
                # would otherwise show as a difference between them.
                for _ in range(repeat):
                    for variant, server in servers.items():
                        times[variant] += timed_posts(sessions[variant], server.url, body, 1, len(request))
            finally:
                for server in servers.values():
                    server.stop()
        medians = {variant: statistics.median(found) for variant, found in times.items()}
        ratio = medians["default"] / medians["one_gaussian"]
        print(f"case={case} rows={len(request)} columns={request.shape[1]} "
              + " ".join(f"{v}_ms={1000 * t:.0f}" for v, t in medians.items())
              + f" default/one_gaussian={ratio:.2f} centres_10000/one_gaussian="
              f"{medians['centres_10000'] / medians['one_gaussian']:.2f} within_2x={'yes' if ratio <= 2 else 'NO'}",
              flush=True)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE",
                        help="hyperparameter overriding the product default (repeatable)")
    parser.add_argument("--epochs", default="1", help="training epochs (the cost of scoring does not depend on it)")
    parser.add_argument("--workers", type=int, default=None, help="SAGEMAKER_MODEL_SERVER_WORKERS (default: serve's)")
    parser.add_argument("--small-rows", type=int, default=32_000)
    parser.add_argument("--large-rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=20, help="requests of the small size")
    parser.add_argument("--repeat-large", type=int, default=5, help="requests of the large size")
    parser.add_argument("--train-rows", type=int, default=12_000,
                        help="training rows (the default draws all of the default 10,000 error centres)")
    parser.add_argument("--cases", action="store_true",
                        help="the default error model against the one Gaussian on real data (see above)")
    parser.add_argument("--repeat-cases", type=int, default=5, help="requests per case and model (median)")
    args = parser.parse_args()
    if args.cases:
        run_cases(args.repeat_cases, args.epochs)
        return
    hyperparameters = {"epochs": args.epochs, **dict(item.split("=", 1) for item in args.hp)}

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as folder:
        base = Path(folder)
        train(base, hyperparameters, args.columns, args.train_rows)
        small = csv_body(series(args.small_rows, args.columns, seed=1))
        large = csv_body(series(args.large_rows, args.columns, seed=2))
        server = start_server(base, args.workers)
        try:
            session, url = requests.Session(), server.url
            timed_posts(session, url, small, 2, args.small_rows)  # warm the connection and the worker
            small_times = timed_posts(session, url, small, args.repeat, args.small_rows)
            large_times = timed_posts(session, url, large, args.repeat_large, args.large_rows)
            assert server.process is not None  # started above
            peaks = worker_peak_rss_mb(server.process.pid)
        finally:
            server.stop()
        report = {
            "hyperparameters": hyperparameters,
            "machine": f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end",
            f"small_{args.small_rows}_rows_ms": {"median": 1000 * statistics.median(small_times),
                                                 "best": 1000 * min(small_times), "worst": 1000 * max(small_times)},
            f"large_{args.large_rows}_rows_per_s": {"median": args.large_rows / statistics.median(large_times),
                                                    "best": args.large_rows / min(large_times)},
            "large_request_mb": len(large) / 2**20,
            "worker_peak_rss_mb": sorted(round(v) for v in peaks.values()),
            "large_in_process": breakdown(base, large),
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
