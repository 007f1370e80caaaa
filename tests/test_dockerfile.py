"""Checks of the image definition and its scripts that need no Docker engine.

hadolint and shellcheck run when installed (the dev extra ships both as wheels). The
entrypoint and the build-time image check are real scripts: they run here, in the dev
environment. What the built image does (train, serve, signals, the SageMaker contract) is
tested on the image itself: scripts/docker_smoke_test.sh, run by scripts/test_image.sh.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch

from conftest import REPO, TINY_HYPERPARAMETERS, make_opt_ml, sine_series

DOCKERFILE = REPO / "Dockerfile"
SHELL_SCRIPTS = ["scripts/docker_smoke_test.sh", "scripts/docker_distributed_test.sh", "scripts/docker_local.sh",
                 "scripts/build_and_push.sh",
                 "scripts/docker_engine.sh", "scripts/make_base_images.sh", "scripts/test_image.sh",
                 "scripts/test.sh", "scripts/test_compat.sh", "scripts/test_sdk_v3.sh", "scripts/dev-setup.sh",
                 "scripts/demo.sh", ".ci/run"]
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]' brings it)")
    return path


@pytest.mark.slow
def test_hadolint_passes() -> None:
    result = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_shellcheck_passes(script: str) -> None:
    result = subprocess.run([tool("shellcheck"), str(REPO / script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert os.access(REPO / script, os.X_OK), f"{script} is not executable"


def test_requirements_cover_the_package_dependencies() -> None:
    declared = [dep for dep in metadata.requires("lstm-ad-sagemaker") or [] if "extra ==" not in dep]
    needed = {re.split(r"[<>=!~ \[;]", dep)[0].lower() for dep in declared}
    assert {"torch", "numpy", "flask", "gunicorn"} <= needed, needed
    lines = (REPO / "docker" / "requirements.txt").read_text().splitlines()
    pinned = {re.split(r"[<>=!~ ]", line)[0].lower(): line for line in lines if line and not line.startswith("#")}
    assert needed - {"torch", "numpy"} <= set(pinned), needed - set(pinned)
    assert re.fullmatch(r"flask==[\d.]+", pinned["flask"]) and re.fullmatch(r"gunicorn==[\d.]+", pinned["gunicorn"])


# --- the scripts the image runs, run here ---------------------------------------------------


def run_entrypoint(args: list[str], base: Path, isolate: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(REPO / "docker" / "entrypoint.py"), *args]
    if isolate:  # a fresh network namespace: not even loopback is up
        command = ["unshare", "--net", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SAGEMAKER_BASE_DIR": str(base)})


def can_isolate_network() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
def test_entrypoint_without_argument_trains_with_no_network(tmp_path: Path) -> None:
    isolate = can_isolate_network()
    base = make_opt_ml(tmp_path, TINY_HYPERPARAMETERS, {"training": {"train.csv": sine_series(300, columns=2)}})
    result = run_entrypoint([], base, isolate=isolate)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (base / "model" / "model.json").is_file() and (base / "model" / "weights.npz").is_file()
    assert "train:mse=" in result.stdout
    if not isolate:
        pytest.skip("trained, but `unshare --net` is unavailable here, so network isolation was not tested")


@pytest.mark.slow
def test_entrypoint_rejects_unknown_commands(tmp_path: Path) -> None:
    result = run_entrypoint(["bogus"], tmp_path)
    assert result.returncode == 2
    assert "Unknown command 'bogus'" in result.stderr and "train|serve" in result.stderr


@pytest.mark.slow
def test_build_time_image_check_runs_here() -> None:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    check = [sys.executable, str(REPO / "docker" / "check_image.py")]
    good = subprocess.run([*check, "--expect-torch", torch.__version__], capture_output=True, text=True,
                          timeout=120, env=env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "image check passed" in good.stdout
    bad = subprocess.run([*check, "--expect-torch", "2.1.0"], capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 1
    assert f"torch changed from the base image's 2.1.0 to {torch.__version__}" in bad.stderr


def test_buildspec_tests_before_building_and_smoke_tests_before_pushing() -> None:
    yaml = pytest.importorskip("yaml")
    spec = yaml.safe_load((REPO / "buildspec.yml").read_text())
    assert spec["version"] == 0.2
    phases = spec["phases"]
    assert list(phases) == ["install", "pre_build", "build", "post_build"]
    pre_build = " ".join(phases["pre_build"]["commands"])
    assert pre_build.index("scripts/test.sh") < pre_build.index("build_and_push.sh login")
    build = phases["build"]["commands"]
    assert phases["pre_build"]["on-failure"] == phases["build"]["on-failure"] == "ABORT"
    steps = [next(word for word in ("build cpu", "build gpu", "-cpu\" SKIP_BUILD=1", "-gpu\" SKIP_BUILD=1",
                                    "push cpu", "push gpu") if word in command) for command in build]
    assert steps == ["build cpu", "-cpu\" SKIP_BUILD=1", "build gpu", "-gpu\" SKIP_BUILD=1", "push cpu", "push gpu"]
    assert "IMAGE_DIGEST" in " ".join(phases["post_build"]["commands"])
