"""A SageMaker batch transform job, run locally without Docker.

The job does what the service does with one instance: the model artifact is unpacked
into `<job>/model`, the real `serve` entrypoint starts with `SAGEMAKER_BASE_DIR=<job>`
on a free port, `/ping` is polled until the server is ready, `/execution-parameters`
is read, every input file is sent (whole, or split into lines and packed into
mini-batches), and the responses are assembled into `<input>.out` in input order.
A file whose requests fail gets no `.out`; the job then fails listing those files.
The server is stopped afterwards, always.

Values passed to `TransformSettings` take precedence over the server's
execution-parameters answer, which takes precedence over the service defaults
(MaxPayloadInMB 6, MaxConcurrentTransforms 1, BatchStrategy MultiRecord).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from .archive import safe_extract
from .errors import LocalJobError
from .server import LocalServer, console_script

logger = logging.getLogger(__name__)

SPLIT_TYPES = ("None", "Line")
STRATEGIES = ("SingleRecord", "MultiRecord")
ASSEMBLE_WITH = ("Line", "None")
DEFAULT_MAX_PAYLOAD_MB = 6
MAX_PAYLOAD_LIMIT_MB = 100
MB = 1024 * 1024
_ENV_STRATEGY = {"SingleRecord": "SINGLE_RECORD", "MultiRecord": "MULTI_RECORD"}


@dataclass(frozen=True)
class TransformSettings:
    """The CreateTransformJob knobs; None means "not set in the request"."""

    split_type: str = "None"
    strategy: str | None = None
    max_payload_mb: float | None = None  # SageMaker takes whole MB; fractions are allowed here for experiments
    max_concurrent_transforms: int | None = None
    assemble_with: str = "None"  # the API's default
    content_type: str = "text/csv"
    accept: str = "text/csv"
    environment: Mapping[str, str] = field(default_factory=dict)
    invocation_timeout_s: float = 600.0  # ModelClientConfig.InvocationsTimeoutInSeconds default
    max_retries: int = 3  # ModelClientConfig.InvocationsMaxRetries default
    startup_timeout_s: float = 300.0

    def check(self) -> None:
        problems = []
        if self.split_type not in SPLIT_TYPES:
            problems.append(f"split type {self.split_type!r} is not supported: use one of {', '.join(SPLIT_TYPES)}")
        if self.strategy is not None and self.strategy not in STRATEGIES:
            problems.append(f"strategy {self.strategy!r} is not valid: use one of {', '.join(STRATEGIES)}")
        if self.assemble_with not in ASSEMBLE_WITH:
            problems.append(f"assemble-with {self.assemble_with!r} is not valid: use Line or None")
        if self.max_payload_mb is not None and not 0 <= self.max_payload_mb <= MAX_PAYLOAD_LIMIT_MB:
            problems.append(f"max payload {self.max_payload_mb} MB is outside [0, {MAX_PAYLOAD_LIMIT_MB}] "
                            "(0 means no limit)")
        if self.max_concurrent_transforms is not None and self.max_concurrent_transforms < 1:
            problems.append("max concurrent transforms must be at least 1")
        if problems:
            raise LocalJobError("Invalid transform settings: " + "; ".join(problems) + ".")


@dataclass(frozen=True)
class TransformResult:
    outputs: list[Path]  # one `.out` per input file, in input order
    execution_parameters: dict[str, object]  # the server's answer ({} when it has none)
    settings: TransformSettings  # the effective settings after precedence


def run_transform_job(model: Path, input_path: Path, output_dir: Path,
                      settings: TransformSettings | None = None, job_dir: Path | None = None,
                      serve_command: Sequence[str] | None = None) -> TransformResult:
    """Score every file under `input_path` with the model in `model` (model.tar.gz or a folder).

    `serve_command` replaces the installed `serve` console script (e.g. another environment's).
    """
    settings = settings or TransformSettings()
    settings.check()
    inputs = list_input_files(Path(input_path))
    with tempfile.TemporaryDirectory(prefix="lstm-ad-transform-") as scratch:
        base = Path(job_dir) if job_dir else Path(scratch)
        install_model(Path(model), base / "model")
        command = list(serve_command) if serve_command else [str(console_script("serve"))]
        server = LocalServer(base, command, _server_environment(settings),
                             base / "serve.log")
        with server:
            server.wait_until_ready(settings.startup_timeout_s)
            parameters = server.execution_parameters()
            effective = _effective_settings(settings, parameters)
            logger.info("Transform: %d file(s), split type %s, strategy %s, max payload %s MB, %d concurrent.",
                        len(inputs), effective.split_type, effective.strategy, effective.max_payload_mb,
                        effective.max_concurrent_transforms)
            outputs = _transform_files(server, inputs, Path(input_path), Path(output_dir), effective)
    return TransformResult(outputs, parameters, effective)


def list_input_files(input_path: Path) -> list[Path]:
    """Files of an S3-prefix-like folder in key order (dot files skipped), or the one file given."""
    if input_path.is_file():
        return [input_path]
    if not input_path.is_dir():
        raise LocalJobError(f"Transform input {input_path} does not exist: give a CSV file or a folder of them.")
    files = sorted((p for p in input_path.rglob("*") if p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(input_path).parts)),
                   key=lambda p: p.relative_to(input_path).as_posix())
    if not files:
        raise LocalJobError(f"Transform input folder {input_path} holds no files.")
    return files


def install_model(model: Path, model_dir: Path) -> None:
    """Unpack model.tar.gz (or copy a model folder) into the job's model/ folder, as SageMaker does."""
    model_dir.mkdir(parents=True, exist_ok=True)
    if model.is_dir():
        shutil.copytree(model, model_dir, dirs_exist_ok=True)
        return
    if not model.is_file():
        raise LocalJobError(f"Model artifact {model} does not exist: give the model.tar.gz of a training job.")
    safe_extract(model, model_dir)  # checks every member first: nothing outside model_dir, no links


def _server_environment(settings: TransformSettings) -> dict[str, str]:
    """What the service puts in the container's environment: batch flag, and only the values the caller set."""
    env = {"SAGEMAKER_BATCH": "true"}
    if settings.max_payload_mb:  # 0 (no limit, chunked) leaves the server at its own maximum
        env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(math.ceil(settings.max_payload_mb))  # the service sends whole MB
    if settings.strategy is not None:
        env["SAGEMAKER_BATCH_STRATEGY"] = _ENV_STRATEGY[settings.strategy]
    if settings.max_concurrent_transforms is not None:
        env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(settings.max_concurrent_transforms)
    env.update(settings.environment)
    return env


def _effective_settings(settings: TransformSettings, parameters: Mapping[str, object]) -> TransformSettings:
    """Request values > execution-parameters > service defaults."""
    def number(key: str, default: float) -> float:
        value = parameters.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default

    strategy = settings.strategy
    if strategy is None:  # the server may answer in either spelling (API or environment)
        answered = str(parameters.get("BatchStrategy", "")).replace("_", "").lower()
        strategy = next((s for s in STRATEGIES if s.lower() == answered), "MultiRecord")
    payload = settings.max_payload_mb
    if payload is None:
        payload = number("MaxPayloadInMB", DEFAULT_MAX_PAYLOAD_MB)
    concurrent = settings.max_concurrent_transforms or int(number("MaxConcurrentTransforms", 1)) or 1
    return replace(settings, strategy=strategy, max_payload_mb=payload, max_concurrent_transforms=concurrent)


def _transform_files(server: LocalServer, inputs: list[Path], root: Path, output_dir: Path,
                     settings: TransformSettings) -> list[Path]:
    outputs, failures = [], []
    for path in inputs:
        relative = path.name if root.is_file() else path.relative_to(root).as_posix()
        target = output_dir / (relative + ".out")
        started = time.monotonic()
        try:
            body = _transform_file(server, path, settings)
        except LocalJobError as exc:
            failures.append(f"{path}: {exc}")
            logger.error("%s failed: %s", path, exc)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(body)
        os.replace(partial, target)  # a .out appears only complete, as in S3
        outputs.append(target)
        logger.info("%s -> %s (%.1f s)", path, target, time.monotonic() - started)
    if failures:
        raise LocalJobError(f"Transform job failed for {len(failures)} of {len(inputs)} input file(s); "
                            "no .out was written for them:\n  - " + "\n  - ".join(failures))
    return outputs


def _transform_file(server: LocalServer, path: Path, settings: TransformSettings) -> bytes:
    """Send the file's payloads (concurrently when allowed) and assemble the answers in order."""
    payloads = list(_payloads(path.read_bytes(), settings))
    workers = min(settings.max_concurrent_transforms or 1, max(len(payloads), 1))
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        responses = list(pool.map(lambda payload: _invoke(server, payload, settings), payloads))
    finally:  # the first failed request fails the file: send no more of its requests
        pool.shutdown(wait=True, cancel_futures=True)
    assembled = bytearray()
    for body in responses:
        assembled += body
        # AssembleWith=Line: "a newline character at the end of every transformed record" (API reference);
        # the SDK's own local mode adds it after every response, even one that ends with a newline, and so
        # does this runner. Our answers end every row with a newline: with Line splitting, AssembleWith=None
        # gives exactly one line per input row; Line adds an empty line after each mini-batch's answer.
        if settings.assemble_with == "Line":
            assembled += b"\n"
    return bytes(assembled)


def _payloads(content: bytes, settings: TransformSettings) -> Iterator[bytes]:
    limit = int((settings.max_payload_mb or 0) * MB)  # 0: no limit (chunked transfer in the service)
    if settings.split_type == "None":
        _check_size(content, limit, "The file")
        yield content
        return
    records = [line for line in content.splitlines(keepends=True) if line.strip()]
    if settings.strategy == "SingleRecord":
        for record in records:
            _check_size(record, limit, "A record")
            yield record
        return
    batch = bytearray()
    for record in records:  # MultiRecord: as many whole records as fit in the payload limit
        _check_size(record, limit, "A record")
        if batch and limit and len(batch) + len(record) > limit:
            yield bytes(batch)
            batch = bytearray()
        batch += record
    if batch:
        yield bytes(batch)


def _check_size(payload: bytes, limit: int, what: str) -> None:
    if limit and len(payload) > limit:
        raise LocalJobError(
            f"{what} is {len(payload) / MB:.2f} MB, over MaxPayloadInMB ({limit / MB:.3g} MB). Raise the limit "
            f"(at most {MAX_PAYLOAD_LIMIT_MB} MB), or split a long series into files that overlap by what the model "
            "reads around a row (lstm-ad-local split --model).")


def _invoke(server: LocalServer, payload: bytes, settings: TransformSettings) -> bytes:
    """POST /invocations; server errors and lost connections are retried, client errors are not."""
    headers = {"Content-Type": settings.content_type, "Accept": settings.accept}
    attempts = 0
    while True:
        response = server.request("POST", "/invocations", payload, headers, settings.invocation_timeout_s)
        attempts += 1
        if response.status == 200:
            return response.body
        if 400 <= response.status < 500 or attempts > settings.max_retries:
            break
    text = response.body.decode("utf-8", "replace").strip()
    raise LocalJobError(f"/invocations answered {response.status or 'no response'}: {text[:2000]}")
