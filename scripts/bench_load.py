"""A bounded load test of the real `serve` over loopback: latency, errors, health checks, a killed worker.

Trains a model with the product's default hyperparameters (one epoch), starts the real `serve`
(default workers and threads for this machine) and runs three phases, each a fixed number of
requests from client threads on 127.0.0.1:

  1. load:    CLIENTS clients x REQUESTS requests of ROWS rows each, while a prober calls /ping
              every 0.2 s;
  2. stalled: the same load while STALLED clients hold connections that promised a body and
              stopped sending (the server drops them after LSTM_AD_BODY_READ_TIMEOUT_S);
  3. killed:  the same load, with one worker killed (SIGKILL) a second in; the master starts a
              new one. Failed requests are counted against what that worker had accepted.

Printed per phase: requests, errors, latency p50/p99, /ping p50/max and failures; and each
worker's peak RSS. Stops by itself; sends nothing outside 127.0.0.1.

    .venv/bin/python scripts/bench_load.py [--clients 32] [--requests 20] [--rows 2000] [--stalled 4]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import csv_body, series, start_server, train, worker_peak_rss_mb  # noqa: E402
from lstm_ad.sagemaker.server import QUEUED_CONNECTIONS  # noqa: E402
from lstm_ad.sagemaker.settings import HEALTH_THREADS  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


class Prober(threading.Thread):
    """Calls /ping every 0.2 s with SageMaker's 2 s timeout until stopped; keeps every latency."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.latencies, self.failures, self.stopped = url, [], 0, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            started = time.monotonic()
            try:
                ok = requests.get(self.url + "/ping", timeout=2).status_code == 200
            except requests.RequestException:
                ok = False
            self.latencies.append(time.monotonic() - started)
            self.failures += not ok


def client(url: str, body: bytes, rows: int, count: int) -> tuple[list[float], int]:
    session, times, errors = requests.Session(), [], 0
    for _ in range(count):
        started = time.monotonic()
        try:
            response = session.post(url + "/invocations", data=body, headers={"Content-Type": "text/csv"},
                                    timeout=120)
            errors += response.status_code != 200 or response.content.count(b"\n") != rows
        except requests.RequestException:
            errors += 1
            session = requests.Session()  # a broken connection: start a fresh one
        times.append(time.monotonic() - started)
    return times, errors


def stalled_client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                 b"Content-Length: 1000000\r\n\r\n1.0\n")
    return sock


def workers_of(master: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
            except OSError:
                continue
            if int(status.get("PPid", "0")) == master:
                found.append(int(entry.name))
    return found


def phase(name: str, server, body: bytes, args: argparse.Namespace, stalled: int = 0, kill: bool = False) -> dict:
    prober = Prober(server.url)
    sockets = [stalled_client(server.port) for _ in range(stalled)]
    prober.start()
    killed = None
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        futures = [pool.submit(client, server.url, body, args.rows, args.requests) for _ in range(args.clients)]
        if kill:
            time.sleep(1.0)
            killed = workers_of(server.process.pid)[0]
            os.kill(killed, signal.SIGKILL)
        results = [future.result() for future in futures]
    prober.stopped.set()
    prober.join()
    for sock in sockets:
        sock.close()
    times = [t for result in results for t in result[0]]
    report = {
        "phase": name, "requests": len(times), "errors": sum(result[1] for result in results),
        "latency_ms": {"p50": round(1000 * percentile(times, 0.5)), "p99": round(1000 * percentile(times, 0.99))},
        "ping_ms": {"p50": round(1000 * percentile(prober.latencies, 0.5)),
                    "max": round(1000 * max(prober.latencies, default=float("nan")))},
        "ping_failures": prober.failures, "pings": len(prober.latencies),
    }
    if kill:
        report["killed_worker"] = killed
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=20, help="requests per client and phase")
    parser.add_argument("--rows", type=int, default=2000, help="rows per request (one column)")
    parser.add_argument("--stalled", type=int, default=4, help="stalled uploads in phase 2")
    parser.add_argument("--body-timeout", default="5", help="LSTM_AD_BODY_READ_TIMEOUT_S for the server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as folder:
        base = Path(folder)
        train(base, {"epochs": "1"}, 1)
        os.environ["LSTM_AD_BODY_READ_TIMEOUT_S"] = args.body_timeout  # inherited by the server
        server = start_server(base, None)
        try:
            body = csv_body(series(args.rows, 1, seed=3))
            threads = int(os.environ.get("LSTM_AD_SERVER_THREADS", "2"))
            reports = [phase("load", server, body, args),
                       phase("stalled", server, body, args, stalled=args.stalled),
                       phase("killed", server, body, args, kill=True)]
            bound = threads + HEALTH_THREADS + QUEUED_CONNECTIONS
            reports[-1]["bound_on_failures"] = f"connections a worker holds: threads + health + queued = {bound}"
            peaks = worker_peak_rss_mb(server.process.pid)
        finally:
            server.stop()
    print(json.dumps({"machine": f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end",
                      "clients": args.clients, "requests_per_client": args.requests, "rows": args.rows,
                      "phases": reports, "worker_peak_rss_mb": sorted(round(v) for v in peaks.values())},
                     indent=1))


if __name__ == "__main__":
    main()
