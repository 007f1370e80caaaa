"""Local SageMaker jobs without Docker: a training job here, batch transform in transform.py.

A training job lays out a job folder exactly like /opt/ml (hyperparameters as
strings, inputdataconfig.json, resourceconfig.json, channels under input/data),
runs the real `train` entrypoint with `SAGEMAKER_BASE_DIR=<job folder>`, streams its
log, and packs model/ into `<output>/model.tar.gz`. When `train` fails, the error
shows the failure file, the text SageMaker would report as FailureReason.

`lstm-ad-local` (see `main`) is the command-line face of both jobs.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lstm_ad.forecast import default_chunk_length
from lstm_ad.hyperparameters import SPECS
from lstm_ad.sagemaker.metrics import METRICS
from lstm_ad.sagemaker.paths import TRAINING_CHANNEL, VALIDATION_CHANNEL, Paths, write_training_config

from .errors import LocalJobError
from .job_folder import link_channel
from .series_files import join_outputs, margins, split_series
from .server import console_script
from .transform import STRATEGIES, TransformSettings, run_transform_job

logger = logging.getLogger(__name__)

MODEL_ARTIFACT = "model.tar.gz"
OUTPUT_ARTIFACT = "output.tar.gz"
LOG_TAIL_LINES = 40
SCORE_WINDOW = int(SPECS["score-window"].default)


@dataclass(frozen=True)
class TrainingJobResult:
    job_name: str
    model_artifact: Path  # <output>/model.tar.gz
    final_metrics: dict[str, float]  # last value of every metric, like DescribeTrainingJob.FinalMetricDataList
    seconds: float


def run_training_job(channels: Mapping[str, Path], hyperparameters: Mapping[str, object], output_dir: Path,
                     job_name: str | None = None, job_dir: Path | None = None,
                     echo: Callable[[str], None] | None = print) -> TrainingJobResult:
    """Run `train` on local files or folders (`{"training": ..., "validation": ...}`); see the module doc."""
    job_name = job_name or time.strftime("lstm-ad-%Y-%m-%d-%H-%M-%S")
    output_dir = Path(output_dir)
    with tempfile.TemporaryDirectory(prefix="lstm-ad-train-") as scratch:
        paths = Paths(Path(job_dir) if job_dir else Path(scratch))
        prepare_training_folder(paths, channels, hyperparameters)
        started = time.monotonic()
        code, lines = _run_streaming([str(console_script("train"))], paths, job_name, echo)
        seconds = time.monotonic() - started
        if code != 0:
            raise LocalJobError(_failure_message(job_name, code, paths, lines))
        output_dir.mkdir(parents=True, exist_ok=True)
        artifact = pack_folder(paths.model_dir, output_dir / MODEL_ARTIFACT)
        output_data = paths.base / "output" / "data"
        if output_data.is_dir() and any(output_data.iterdir()):
            pack_folder(output_data, output_dir / OUTPUT_ARTIFACT)
    metrics = final_metrics(lines)
    logger.info("Training job %s completed in %.1f s: %s", job_name, seconds, artifact)
    return TrainingJobResult(job_name, artifact, metrics, seconds)


def prepare_training_folder(paths: Paths, channels: Mapping[str, Path], hyperparameters: Mapping[str, object]
                            ) -> None:
    """Write the config files and channels as SageMaker does before it starts the container."""
    missing = [f"{name}: {path}" for name, path in channels.items() if not Path(path).exists()]
    if missing:
        raise LocalJobError("Input not found (give a CSV file or a folder of them): " + "; ".join(missing))
    write_training_config(paths, channels, hyperparameters)
    for name, source in channels.items():
        link_channel(Path(source), paths.channel(name))


def _run_streaming(command: Sequence[str], paths: Paths, job_name: str, echo: Callable[[str], None] | None
                   ) -> tuple[int, list[str]]:
    """Run the entrypoint, echo each log line as it comes; return the exit code and all lines."""
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(paths.base), "TRAINING_JOB_NAME": job_name,
           "PYTHONUNBUFFERED": "1"}
    lines: list[str] = []
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, text=True, errors="replace") as process:
        assert process.stdout is not None  # stdout=PIPE
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if echo is not None:
                echo(lines[-1])
    return process.returncode, lines


def _failure_message(job_name: str, code: int, paths: Paths, lines: list[str]) -> str:
    if paths.failure_file.is_file():
        reason = paths.failure_file.read_text(errors="replace").strip()
        return f"Training job {job_name} failed (exit code {code}). Failure file:\n{reason}"
    last = "\n".join(deque(lines, maxlen=LOG_TAIL_LINES))
    return (f"Training job {job_name} failed (exit code {code}) without writing {paths.failure_file}. "
            f"Last log lines:\n{last}")


def final_metrics(lines: Sequence[str]) -> dict[str, float]:
    """The last value of each metric in the log, read with the MetricDefinitions regexes."""
    found: dict[str, float] = {}
    patterns = [(metric.name, re.compile(metric.regex)) for metric in METRICS]
    for line in lines:
        for name, pattern in patterns:
            match = pattern.search(line)
            if match:
                try:
                    found[name] = float(match.group(1))
                except ValueError:  # SageMaker drops non-numeric captures too
                    continue
    return found


def pack_folder(folder: Path, archive_path: Path) -> Path:
    """tar.gz of the folder's contents at the archive root, as SageMaker packs /opt/ml/model."""
    partial = archive_path.with_name(archive_path.name + ".partial")
    with tarfile.open(partial, "w:gz") as archive:
        for path in sorted(folder.rglob("*")):
            archive.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    os.replace(partial, archive_path)
    return archive_path


# -- command line ----------------------------------------------------------------------------


def _key_values(items: Sequence[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LocalJobError(f"{what} {item!r} must be written as name=value (e.g. epochs=10).")
        pairs[key.strip()] = value.strip()
    return pairs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lstm-ad-local", description="Run LSTM-AD SageMaker jobs locally, "
                                     "without Docker or AWS, with the real train and serve entrypoints.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="run a training job; writes OUTPUT/model.tar.gz")
    train.add_argument("--train", required=True, type=Path, help="CSV file or folder: the training channel")
    train.add_argument("--validation", type=Path, help="CSV file or folder: the optional validation channel")
    train.add_argument("--hyperparameters", nargs="*", default=[], metavar="NAME=VALUE")
    train.add_argument("--output", required=True, type=Path, help="folder for model.tar.gz")
    train.add_argument("--job-dir", type=Path, help="keep the /opt/ml-like job folder here (default: temporary)")
    transform = commands.add_parser("transform", help="run a batch transform job; writes OUTPUT/<input>.out")
    transform.add_argument("--model", required=True, type=Path, help="model.tar.gz of a training job")
    transform.add_argument("--input", required=True, type=Path, help="CSV file or folder of CSV files")
    transform.add_argument("--output", required=True, type=Path)
    transform.add_argument("--split-type", default="None", choices=["None", "Line"])
    transform.add_argument("--strategy", choices=list(STRATEGIES), help="batch strategy (with --split-type Line)")
    transform.add_argument("--max-payload-mb", type=float, help="MaxPayloadInMB (default: server's answer, or 6)")
    transform.add_argument("--max-concurrent-transforms", type=int)
    transform.add_argument("--assemble-with", default="None", choices=["Line", "None"],
                           help="None (the default, as in the API): answers concatenated, one line per input row")
    transform.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE", help="server environment")
    transform.add_argument("--outputs", metavar="alarm,attribution",
                           help="optional output columns after score,pred_1..pred_d (sets LSTM_AD_OUTPUT)")
    transform.add_argument("--job-dir", type=Path, help="keep the job folder (model/, serve.log) here")
    demo = commands.add_parser("demo-data", help="write generated demo data (train/, test/, labels)")
    demo.add_argument("--output", required=True, type=Path)
    demo.add_argument("--seed", type=int, default=0)
    split = commands.add_parser("split", help="split a long series into files that start where the network's chunks "
                                "do and overlap by what the model reads around a row (its log says; or give --model)")
    split.add_argument("--input", required=True, type=Path, help="the CSV series")
    split.add_argument("--output", required=True, type=Path, help="folder for part-00001.csv, ...")
    split.add_argument("--rows-per-part", required=True, type=int,
                       help="at most this many rows a part (rounded down to whole chunks of the network's)")
    _model_arguments(split)
    join = commands.add_parser("join", help="join the parts' .out files into one answer for the whole series")
    join.add_argument("--outputs", required=True, type=Path, help="folder with part-*.csv.out")
    join.add_argument("--output", required=True, type=Path, help="the joined .out file")
    _model_arguments(join)
    report = commands.add_parser("demo-report", help="compare a demo .out with the labelled anomalies")
    report.add_argument("--out", required=True, type=Path, help="the .out file of the demo test series")
    report.add_argument("--labels", required=True, type=Path, help="the demo labels file (0/1 per row)")
    return parser


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    """What the model reads around a row: from the model itself (--model), or from its hyperparameters."""
    parser.add_argument("--model", type=Path, help="the model (model.tar.gz or its folder): reads the rest from it")
    parser.add_argument("--context-length", type=int, help="without --model: the model's context-length")
    parser.add_argument("--score-window", type=int, default=SCORE_WINDOW,
                        help=f"without --model: the model's score-window (default {SCORE_WINDOW})")
    parser.add_argument("--discord-window", type=int, default=0,
                        help="without --model: the window of the model's discord term as its training log names it "
                             "(0: no discord term)")
    parser.add_argument("--score-window-position", default="centred", choices=["centred", "trailing"],
                        help="without --model: the model's score-window-position (default centred)")


def _margins(args: argparse.Namespace) -> tuple[int, int, int]:
    """(head, tail, chunk length) of split files (series_files.margins), from --model or the hyperparameters."""
    if args.model is not None:
        from lstm_ad.predictor import Predictor

        from .archive import safe_extract

        if args.model.is_dir():
            predictor = Predictor.load(args.model)
        else:
            with tempfile.TemporaryDirectory(prefix="lstm-ad-model-") as folder:
                safe_extract(args.model, Path(folder))
                predictor = Predictor.load(Path(folder))
        return (*predictor.split_margins(), predictor.chunk_length)
    if args.context_length is None:
        raise LocalJobError("Give --model (the model.tar.gz or its folder) or --context-length (with --score-window, "
                            "--discord-window and --score-window-position as the model was trained).")
    head, tail = margins(args.context_length, args.score_window, args.discord_window, args.score_window_position)
    return head, tail, default_chunk_length(args.context_length)


def _run_command(args: argparse.Namespace) -> None:
    from . import demo_data  # only the demo commands need it

    if args.command == "train":
        channels = {TRAINING_CHANNEL: args.train}
        if args.validation:
            channels[VALIDATION_CHANNEL] = args.validation
        result = run_training_job(channels, _key_values(args.hyperparameters, "Hyperparameter"), args.output,
                                  job_dir=args.job_dir)
        print(f"Model artifact: {result.model_artifact} ({result.seconds:.1f} s)")
    elif args.command == "transform":
        settings = TransformSettings(split_type=args.split_type, strategy=args.strategy,
                                     max_payload_mb=args.max_payload_mb,
                                     max_concurrent_transforms=args.max_concurrent_transforms,
                                     assemble_with=args.assemble_with,
                                     environment={**_key_values(args.env, "--env"),
                                                  **({"LSTM_AD_OUTPUT": args.outputs} if args.outputs else {})})
        outputs = run_transform_job(args.model, args.input, args.output, settings, args.job_dir).outputs
        print("Output: " + ", ".join(str(p) for p in outputs))
    elif args.command == "split":
        head, tail, chunk_length = _margins(args)
        parts = split_series(args.input, args.output, args.rows_per_part, head + tail, chunk_length)
        print(f"{len(parts)} parts in {args.output}")
    elif args.command == "join":
        outputs = sorted(args.outputs.glob("part-*.csv.out"))
        if not outputs:
            raise LocalJobError(f"No part-*.csv.out files in {args.outputs}.")
        joined = join_outputs(outputs, args.output, *_margins(args))
        print(f"Joined {len(outputs)} parts into {joined}")
    elif args.command == "demo-data":
        print(demo_data.write_demo_data(args.output, seed=args.seed).describe())
    else:
        print(demo_data.report(args.out, args.labels))


def main(argv: Sequence[str] | None = None) -> None:
    """`lstm-ad-local`: exit 0 on success, 1 with the job's failure text on stderr otherwise."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    args = _parser().parse_args(argv)
    try:
        _run_command(args)
    except LocalJobError as exc:
        print(f"lstm-ad-local {args.command}: {exc}", file=sys.stderr)
        sys.exit(1)
