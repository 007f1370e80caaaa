"""The image, run for real where a Docker engine answers; the local Docker script everywhere.

`test_image_smoke` runs scripts/docker_smoke_test.sh (train and serve with --network none) on
LSTM_AD_IMAGE when set, else on an image it builds from the Dockerfile on a base found in the
engine: AWS's PyTorch 2.1 image if it was pulled, else the local stand-in that
scripts/make_base_images.sh makes. It skips, saying why, when no engine answers or no base is
there (no registry is needed or tried). scripts/test_image.sh runs the same smoke test in CI.

`test_build_context_is_only_what_the_image_needs` sends the real build context (.dockerignore
applied by the engine) into a FROM-scratch image and lists it.

`scripts/docker_local.sh train` is tested without an engine: a stand-in `docker` on PATH
turns `docker run -v HOST:/opt/ml/...` mounts into a folder of links and runs the image's
real entrypoint there with SAGEMAKER_BASE_DIR, so the /opt/ml layout the script builds is
what the real `train` reads.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from conftest import REPO, TINY_HYPERPARAMETERS, sine_series, write_csv
from lstm_ad_local.server import free_port

pytestmark = pytest.mark.slow  # every test here starts a process (Docker, or the entrypoint)

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


AWS_BASE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1.0-cpu-py310-ubuntu20.04-sagemaker"
STAND_IN_BASE = "lstm-ad-base/pytorch-2.1-py310:standin"


def have_image(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def test_image_smoke() -> None:
    reason = docker_unavailable_reason()
    if reason:
        pytest.skip(f"{reason}; the image smoke test needs Docker")
    image = os.environ.get("LSTM_AD_IMAGE")
    env = {**os.environ, "IMAGE": image or "lstm-ad:smoke", "SKIP_BUILD": "1" if image else "0"}
    if not image:
        base = next((b for b in (AWS_BASE, STAND_IN_BASE) if have_image(b)), None)
        if base is None:
            pytest.skip(f"no base image in the engine to build on (neither {AWS_BASE} nor {STAND_IN_BASE}): "
                        "run scripts/make_base_images.sh py310, or set LSTM_AD_IMAGE to a built image")
        env["BUILD_ARGS"] = f"--build-arg BASE_IMAGE={base}"
    result = subprocess.run(["bash", str(SMOKE_TEST)], capture_output=True, text=True, timeout=3600, env=env)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    assert "smoke test passed" in result.stdout
    assert re.search(r"^image=\S+ size_mb=\d+ cold_start_s=[\d.]+ smoke=ok$", result.stdout, re.MULTILINE)


def test_build_context_is_only_what_the_image_needs(tmp_path: Path) -> None:
    """The engine applies .dockerignore: the context holds the package and docker/, nothing else."""
    reason = docker_unavailable_reason()
    if reason:
        pytest.skip(f"{reason}; listing the real build context needs Docker")
    tag = f"lstm-ad-context-test:{os.getpid()}"
    build = subprocess.run(["docker", "build", "-q", "-t", tag, "-f", "-", str(REPO)], input="FROM scratch\nCOPY . /\n",
                           capture_output=True, text=True, timeout=300, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    assert build.returncode == 0, build.stdout + build.stderr
    container = subprocess.run(["docker", "create", tag, "none"], capture_output=True, text=True,
                               check=True).stdout.strip()
    try:
        listing = subprocess.run(["docker", "export", container], capture_output=True, check=True, timeout=120).stdout
    finally:
        subprocess.run(["docker", "rm", container], capture_output=True)
        subprocess.run(["docker", "rmi", tag], capture_output=True)
    with tarfile.open(fileobj=io.BytesIO(listing)) as archive:
        skip = (".dockerenv", "dev/", "etc/", "proc/", "sys/")  # made by `docker create`, not the context
        files = {m.name for m in archive.getmembers() if m.isfile() and not m.name.startswith(skip)}
    tracked = subprocess.run(["git", "ls-files", "container/lstm_ad", "docker", "pyproject.toml", "README.md"],
                             cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    tracked = [p for p in tracked if not p.startswith("container/lstm_ad_local/")]
    assert sorted(set(tracked) - files) == []  # everything the Dockerfile copies is sent
    extra = sorted(f for f in files - set(tracked) if "__pycache__" not in f)
    assert extra == [], f"sent to the engine but not needed by the image: {extra[:20]}"
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)
    assert "container/lstm_ad/__init__.py" in files and "docker/entrypoint.py" in files


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
