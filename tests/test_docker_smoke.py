"""The image, run for real where a Docker engine answers; the local Docker script everywhere.

`test_image_smoke` runs scripts/docker_smoke_test.sh (build, then train and serve with
--network none). It skips, saying why, when `docker info` fails. Set LSTM_AD_IMAGE to
test an image you already built instead of building one.

`scripts/docker_local.sh train` is tested without an engine: a stand-in `docker` on PATH
turns `docker run -v HOST:/opt/ml/...` mounts into a folder of links and runs the image's
real entrypoint there with SAGEMAKER_BASE_DIR, so the /opt/ml layout the script builds is
what the real `train` reads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, TINY_HYPERPARAMETERS, sine_series, write_csv
from lstm_ad_local.server import free_port

SMOKE_TEST = REPO / "scripts" / "docker_smoke_test.sh"
DOCKER_LOCAL = REPO / "scripts" / "docker_local.sh"

STAND_IN = f"""#!{sys.executable}
# A stand-in for `docker run [options] IMAGE COMMAND`: /opt/ml mounts become links under a folder.
import os, sys
from pathlib import Path

args, mounts = sys.argv[2:], []
while args[0].startswith("-"):
    option = args.pop(0)
    if option in ("-v", "--volume"):
        host, target = args.pop(0).split(":")[:2]
        mounts.append((host, target))
    elif option == "-p":  # 127.0.0.1:PORT:8080 -> the server listens on PORT itself
        os.environ["SAGEMAKER_BIND_TO_PORT"] = args.pop(0).split(":")[-2]
    elif option in ("--network", "--name", "--gpus"):
        args.pop(0)
command = args[1:]  # args[0] is the image
base = Path(os.environ["STAND_IN_ROOT"])
for host, target in mounts:
    link = base / Path(target).relative_to("/opt/ml")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(host)
Path(os.environ["STAND_IN_ROOT"] + ".args").write_text(" ".join(sys.argv[1:]))
env = {{**os.environ, "SAGEMAKER_BASE_DIR": str(base)}}
os.execve(sys.executable, [sys.executable, {str(REPO / "docker" / "entrypoint.py")!r}, *command], env)
"""


def docker_unavailable_reason() -> str | None:
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine answers (`docker info` failed: {detail})"
    return None


@pytest.mark.slow
def test_image_smoke() -> None:
    reason = docker_unavailable_reason()
    if reason:
        pytest.skip(f"{reason}; the image smoke test needs Docker")
    image = os.environ.get("LSTM_AD_IMAGE")
    env = {**os.environ, "IMAGE": image or "lstm-ad:smoke", "SKIP_BUILD": "1" if image else "0"}
    result = subprocess.run(["bash", str(SMOKE_TEST)], capture_output=True, text=True, timeout=3600, env=env)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    assert "smoke test passed" in result.stdout


@pytest.fixture
def stand_in(tmp_path: Path) -> dict[str, str]:
    """Environment for docker_local.sh with the stand-in `docker` first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(STAND_IN)
    (bin_dir / "docker").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "STAND_IN_ROOT": str(tmp_path / "opt_ml"), "OUTPUT_DIR": str(tmp_path / "out"), "TMPDIR": str(tmp_path)}


def test_docker_local_train_with_channels_and_hyperparameters(tmp_path: Path, stand_in: dict[str, str]) -> None:
    data = tmp_path / "data"
    write_csv(data / "training" / "a.csv", sine_series(300, columns=2))
    write_csv(data / "validation" / "b.csv", sine_series(120, columns=2, seed=1))
    hyperparameters = tmp_path / "hp.json"
    hyperparameters.write_text(json.dumps(TINY_HYPERPARAMETERS))
    result = subprocess.run(["bash", str(DOCKER_LOCAL), "train", str(data), str(hyperparameters)],
                            capture_output=True, text=True, timeout=300, env=stand_in)
    assert result.returncode == 0, result.stdout + result.stderr
    model = tmp_path / "out" / "model"
    assert (model / "model.json").is_file() and (model / "weights.npz").is_file()
    assert "valid:mse=" in result.stdout  # the validation channel was mounted and read
    assert f"Model written to {model}" in result.stderr
    assert "--network none" in (tmp_path / "opt_ml.args").read_text()


def test_docker_local_train_reports_the_failure(tmp_path: Path, stand_in: dict[str, str]) -> None:
    write_csv(tmp_path / "flat" / "a.csv", sine_series(300))  # CSV files only: the training channel
    hyperparameters = tmp_path / "hp.json"
    hyperparameters.write_text(json.dumps({"hidden-size": "0"}))
    result = subprocess.run(["bash", str(DOCKER_LOCAL), "train", str(tmp_path / "flat"), str(hyperparameters)],
                            capture_output=True, text=True, timeout=300, env=stand_in)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Training failed (exit 2):" in result.stderr
    assert "`hidden-size` must be in [1, 4096], got \"0\"" in result.stderr  # the failure file, shown


def test_docker_local_serve_and_predict(tmp_path: Path, stand_in: dict[str, str]) -> None:
    pytest.importorskip("lstm_ad.sagemaker.server", reason="the serve module is not in this checkout yet")
    if shutil.which("curl") is None:
        pytest.skip("docker_local.sh predict needs curl")
    write_csv(tmp_path / "data" / "a.csv", sine_series(300, columns=2))
    (tmp_path / "hp.json").write_text(json.dumps(TINY_HYPERPARAMETERS))
    subprocess.run(["bash", str(DOCKER_LOCAL), "train", str(tmp_path / "data"), str(tmp_path / "hp.json")],
                   capture_output=True, text=True, timeout=300, env=stand_in, check=True)
    test_csv = write_csv(tmp_path / "test.csv", sine_series(60, columns=2, seed=2))
    port = str(free_port())
    serve_env = {**stand_in, "STAND_IN_ROOT": str(tmp_path / "serve_ml")}
    server = subprocess.Popen(["bash", str(DOCKER_LOCAL), "serve", str(tmp_path / "out" / "model"), port],
                              env=serve_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, result = time.monotonic() + 90, None
        while time.monotonic() < deadline:
            result = subprocess.run(["bash", str(DOCKER_LOCAL), "predict", str(test_csv), port],
                                    capture_output=True, text=True, timeout=60, env=stand_in)
            if result.returncode == 0 or server.poll() is not None:
                break
            time.sleep(1)
        assert result is not None and result.returncode == 0, result and result.stderr
        lines = result.stdout.splitlines()
        context = int(TINY_HYPERPARAMETERS["context-length"])
        assert len(lines) == 60 and lines[:context] == [",,"] * context
        assert all(len(line.split(",")) == 3 for line in lines[context:])
    finally:
        server.terminate()
        server.wait(timeout=60)
