"""Peak memory of one request per byte of its CSV body: what `MEMORY_PER_BODY_BYTE` (sagemaker/settings.py) must cover.

For each case, trains a model with the real `train` (one epoch: the weights' values do not change the memory
of scoring) on a generated series, then, in a fresh process per measurement, does what a serve worker does for
one request (decode the CSV body, score, encode the answer: the functions app.py calls) and reads the
kernel's peak resident set (VmHWM, reset just before the request through /proc/self/clear_refs). It prints
the peak over the process's resident set before the request, per byte of body, for the model's default output
and for the largest answer (alarm and attribution columns). Linux only.

    .venv/bin/python scripts/bench_memory.py [--body-mb 10] [--case "1 column" ...]

Cases: 1 column (the discord term on: the series has a period), the same with `discord-refs` 0, 2 columns,
38 columns (the discord term off: `discord-window` 0 on several columns), 38 columns with `discord-window` 50.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from bench_serve import csv_body, series, train
from lstm_ad.sagemaker.settings import MEMORY_PER_BODY_BYTE

CASES = {  # name: (columns, hyperparameters)
    "1 column": (1, {}),
    "1 column, discord-refs 0": (1, {"discord-refs": "0"}),
    "2 columns": (2, {}),
    "38 columns": (38, {}),
    "38 columns, discord-window 50": (38, {"discord-window": "50"}),
}

# Run in a fresh process: the request's own peak, not the high-water mark of training or of making the body.
REQUEST = textwrap.dedent("""
    import json, re, sys
    from pathlib import Path
    from lstm_ad.sagemaker.process import configure_serve_worker, retain_freed_memory
    retain_freed_memory()  # as the `serve` entrypoint
    configure_serve_worker(1)  # as a worker after the fork: one torch thread, one malloc arena
    from lstm_ad.predictor import Predictor
    from lstm_ad.sagemaker.payloads import decode_csv, encode_csv
    predictor = Predictor.load(Path(sys.argv[1]))
    body = Path(sys.argv[2]).read_bytes()
    full = sys.argv[3] == "full"
    predictor.score(decode_csv(body[:20000].rsplit(b"\\n", 1)[0]), alarm=full, attribution=full)  # warm
    def kib(field):
        return int(re.search(field + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024
    Path("/proc/self/clear_refs").write_text("5")  # peak resident set := current
    before = kib("VmRSS")
    answer = encode_csv(predictor.score(decode_csv(body, predictor.columns), alarm=full, attribution=full))
    print(json.dumps({"peak_over_start": kib("VmHWM") - before, "answer_bytes": len(answer)}))
""")


def measure(model: Path, body_file: Path, outputs: str) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", REQUEST, str(model), str(body_file), outputs],
                          capture_output=True, text=True, check=True)
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--body-mb", type=float, default=10.0, help="size of each request's CSV body")
    parser.add_argument("--case", action="append", choices=list(CASES), help="only these cases (repeatable)")
    args = parser.parse_args()
    if not Path("/proc/self/clear_refs").exists():
        sys.exit("bench_memory.py reads the peak resident set from /proc: run it on Linux")
    report = {"machine": f"{os.cpu_count()} CPUs", "MEMORY_PER_BODY_BYTE": MEMORY_PER_BODY_BYTE, "cases": {}}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        for name, (columns, hyperparameters) in CASES.items():
            if args.case and name not in args.case:
                continue
            base = Path(folder) / name.replace(" ", "_").replace(",", "")
            train(base, {"epochs": "1", **hyperparameters}, columns, 12_000)
            row_bytes = len(csv_body(series(100, columns, seed=2))) / 100
            rows = int(args.body_mb * 2**20 / row_bytes)
            body_file = base / "body.csv"
            body_file.write_bytes(csv_body(series(rows, columns, seed=2)))
            body = body_file.stat().st_size
            case = {"rows": rows, "body_mb": round(body / 2**20, 1)}
            for outputs in ("default", "full"):
                found = measure(base / "model", body_file, outputs)
                case[f"{outputs}_bytes_per_body_byte"] = round(found["peak_over_start"] / body, 1)
                case[f"{outputs}_answer_mb"] = round(found["answer_bytes"] / 2**20, 1)
            report["cases"][name] = case
            print(name, json.dumps(case), file=sys.stderr, flush=True)
    worst = max(max(c["default_bytes_per_body_byte"], c["full_bytes_per_body_byte"]) for c in report["cases"].values())
    report["worst_bytes_per_body_byte"] = worst
    report["within_MEMORY_PER_BODY_BYTE"] = worst <= MEMORY_PER_BODY_BYTE
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
