"""The listing's client flow, run for real: SageMaker Python SDK v2 local mode against a built image.

The blog's code path: `Estimator(image_uri=..., instance_type="local").fit({"training": ...})`, then
`estimator.transformer(...).transform(..., content_type="text/csv")` and the `.out` file it writes,
with `file://` data and a `LocalSession` (`local_code`), so no AWS account and no S3. The SDK starts
the image with docker-compose, as `train` and then as `serve`, exactly as it would for a notebook user.

Skipped unless LSTM_AD_IMAGE names a built image (scripts/test_image.sh sets it after building):
it needs a Docker engine, docker-compose and minutes. The SDK runs in a child process with fake
credentials, a region and telemetry switched off (its telemetry would call AWS, which fails
slowly without network); the child is bounded by a timeout all the same.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import sine_series, write_csv

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")  # before the first sagemaker import (warnings fail)
IMAGE = os.environ.get("LSTM_AD_IMAGE", "")
CONTEXT_LENGTH = 20
TEST_ROWS = 200
HYPERPARAMETERS = {"context-length": CONTEXT_LENGTH, "prediction-length": 2, "sequence-stride": 5,
                   "hidden-size": 8, "num-layers": 1, "epochs": 3, "batch-size": 32}
TIMEOUT_S = 900  # the whole flow: two container starts, training, a transform
AFTER_OUTPUT_S = 120  # once the .out is complete, the SDK only cleans up: do not wait longer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not IMAGE, reason="set LSTM_AD_IMAGE to a built image to run the SDK local-mode "
                       "flow against it (scripts/test_image.sh does)"),
]

# The notebook's flow, with the image instead of the Marketplace algorithm (AlgorithmEstimator cannot
# run in local mode) and file:// locations instead of S3.
CLIENT = r"""
import json, sys
from sagemaker.estimator import Estimator
from sagemaker.local import LocalSession

args = json.loads(sys.argv[1])
session = LocalSession()
session.config = {"local": {"local_code": True}}
estimator = Estimator(image_uri=args["image"], role="arn:aws:iam::111122223333:role/LstmAdLocalTest",
                      instance_count=1, instance_type="local", sagemaker_session=session,
                      hyperparameters=args["hyperparameters"], output_path=args["output"])
estimator.fit({"training": args["train"]})
print("MODEL_DATA=" + estimator.model_data, flush=True)
transformer = estimator.transformer(instance_count=1, instance_type="local", accept="text/csv",
                                    assemble_with="Line", max_concurrent_transforms=1,
                                    output_path=args["predictions"])
# No split_type: whole files, as the blog. logs=False: in local mode the SDK's wait(logs=True) reads
# the job's logs from CloudWatch (the real service), which fails offline after the .out is written.
transformer.transform(args["test"], content_type="text/csv", logs=False)
print("TRANSFORM_DONE", flush=True)
"""

TELEMETRY_OFF = """SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


def sdk_unavailable_reason() -> str | None:
    try:
        import sagemaker
    except ImportError:
        return "the sagemaker SDK is not installed (pip install -e '.[dev]')"
    if not sagemaker.__version__.startswith("2."):
        return f"sagemaker {sagemaker.__version__} is not v2 (Estimator and local mode are v2 APIs)"
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    if shutil.which("docker-compose") is None and subprocess.run(
            ["docker", "compose", "version"], capture_output=True).returncode != 0:
        return "SDK local mode needs docker-compose or the compose plugin"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        return "no Docker engine answers (`docker info` failed; scripts/docker_engine.sh start starts one)"
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode != 0:
        return f"no image {IMAGE!r} in the Docker engine"
    return None


def containers_of(image: str) -> set[str]:
    result = subprocess.run(["docker", "ps", "-aq", "--filter", f"ancestor={image}"], capture_output=True, text=True)
    return set(result.stdout.split())


def run_client(args: dict[str, str | dict[str, int] | str], out_file: Path, env: dict[str, str],
               log: Path) -> tuple[int | None, str]:
    """Run CLIENT; return (exit code or None if stopped by us after the output was complete, its output)."""
    with log.open("w") as sink:
        process = subprocess.Popen([sys.executable, "-c", CLIENT, json.dumps(args)], stdout=sink,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline, complete_since = time.monotonic() + TIMEOUT_S, None
        try:
            while process.poll() is None:
                if complete_since is None and out_file.is_file() and \
                        len(out_file.read_text().splitlines()) >= TEST_ROWS:
                    complete_since = time.monotonic()
                if complete_since is not None and time.monotonic() - complete_since > AFTER_OUTPUT_S:
                    break  # the output is there: the SDK's remaining clean-up may not finish offline
                if time.monotonic() > deadline:
                    break
                time.sleep(1)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=60)
                code = None
            else:
                code = process.returncode
    return code, log.read_text()


def test_sdk_local_mode_fit_and_batch_transform(tmp_path: Path) -> None:
    reason = sdk_unavailable_reason()
    if reason:
        pytest.skip(reason)
    train_csv = write_csv(tmp_path / "train" / "train.csv", sine_series(600, columns=2))
    test_csv = write_csv(tmp_path / "test" / "test.csv", sine_series(TEST_ROWS, columns=2, seed=1))
    predictions = tmp_path / "predictions"
    (tmp_path / "sdk-config.yaml").write_text(TELEMETRY_OFF)
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIAFAKEFORLOCALTEST",
           "AWS_SECRET_ACCESS_KEY": "fake-secret-for-local-mode", "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
           "SAGEMAKER_USER_CONFIG_OVERRIDE": str(tmp_path / "sdk-config.yaml"), "TMPDIR": str(tmp_path)}
    args = {"image": IMAGE, "hyperparameters": {k: str(v) for k, v in HYPERPARAMETERS.items()},
            "train": train_csv.parent.as_uri(), "test": test_csv.parent.as_uri(),
            "output": (tmp_path / "output").as_uri(), "predictions": predictions.as_uri()}
    out_file = predictions / (test_csv.name + ".out")
    before = containers_of(IMAGE)
    try:
        code, output = run_client(args, out_file, env, tmp_path / "client.log")
    finally:  # containers the SDK left behind if it was stopped (only this test's: new since `before`)
        for container in containers_of(IMAGE) - before:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        # the containers wrote root-owned files under tmp_path: pytest removes them (we run as root in CI)

    assert code in (0, None), f"the SDK client failed (exit {code}):\n{output[-5000:]}"
    assert "train:mse=" in output, output[-3000:]  # the training job's metric lines reached the client
    assert "MODEL_DATA=file://" in output, output[-3000:]
    model_data = Path(output.split("MODEL_DATA=file://")[1].split()[0])
    assert model_data.name == "model.tar.gz" and model_data.is_file()
    assert out_file.is_file(), f"no {out_file} after the transform:\n{output[-5000:]}"
    lines = out_file.read_text().splitlines()
    # AssembleWith=Line: local mode appends a newline after each response, and ours already ends with
    # one, so the SDK's .out ends with one empty line (the listing's real batch output does not).
    if len(lines) == TEST_ROWS + 1 and lines[-1] == "":
        lines.pop()
    assert len(lines) == TEST_ROWS, f"{len(lines)} output rows for {TEST_ROWS} input rows"
    assert lines[:CONTEXT_LENGTH] == [",,"] * CONTEXT_LENGTH  # warm-up: empty score and predictions
    for line in lines[CONTEXT_LENGTH:]:
        score, *predicted = (float(field) for field in line.split(","))
        assert len(predicted) == 2
