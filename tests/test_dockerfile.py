"""Checks of the image definition and its scripts that need no Docker engine.

hadolint and shellcheck run when installed (the dev extra ships both as wheels). The
entrypoint and the build-time image check are real scripts: they run here, in the dev
environment. What the built image does (train, serve, signals, the SageMaker contract) is
tested on the image itself: scripts/docker_smoke_test.sh, run by scripts/test_image.sh.
"""

from __future__ import annotations

import json
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
                 "scripts/sdk_v3_venv.sh", "scripts/test_notebooks_aws.sh", "scripts/run_notebooks.sh",
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
    assert 'export IMAGE_TAG="$(scripts/build_and_push.sh tag)"' in phases["pre_build"]["commands"]
    build = phases["build"]["commands"]
    assert phases["pre_build"]["on-failure"] == phases["build"]["on-failure"] == "ABORT"
    steps = [next(word for word in ('build "$CPU_VARIANT"', 'build "$GPU_VARIANT"', '-$CPU_VARIANT" SKIP_BUILD=1',
                                    '-$GPU_VARIANT" SKIP_BUILD=1', 'push "$CPU_VARIANT"', 'push "$GPU_VARIANT"')
                 if word in command) for command in build]
    assert steps == ['build "$CPU_VARIANT"', '-$CPU_VARIANT" SKIP_BUILD=1', 'build "$GPU_VARIANT"',
                     '-$GPU_VARIANT" SKIP_BUILD=1', 'push "$CPU_VARIANT"', 'push "$GPU_VARIANT"']
    variables = spec["env"]["variables"]
    assert (variables["CPU_VARIANT"], variables["GPU_VARIANT"]) == ("cpu-2.13", "gpu-2.13")  # the ones to list
    assert "IMAGE_DIGEST" in " ".join(phases["post_build"]["commands"])


def build_and_push(args: list[str], env: dict[str, str], script: Path = REPO / "scripts" / "build_and_push.sh"
                   ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env})


DOCKER_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


@pytest.mark.slow
def test_image_tag_of_a_codebuild_s3_source_is_the_build(tmp_path: Path) -> None:
    """An S3 source: CODEBUILD_RESOLVED_SOURCE_VERSION is empty and there is no .git (the script runs from
    a copy outside any repository); the tag was empty and every later step stopped."""
    copy = tmp_path / "source" / "scripts" / "build_and_push.sh"
    copy.parent.mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "build_and_push.sh", copy)
    env = {"CODEBUILD_RESOLVED_SOURCE_VERSION": "", "CODEBUILD_BUILD_NUMBER": "17",
           "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    result = build_and_push(["tag"], env, copy)
    assert result.returncode == 0, result.stderr
    tag = result.stdout.strip()
    assert re.fullmatch(r"build-17-\d{14}", tag) and DOCKER_TAG.fullmatch(tag + "-gpu-2.13"), tag
    assert build_and_push(["tag"], {"GIT_CEILING_DIRECTORIES": str(tmp_path)}, copy).stdout.startswith("build-local-")


@pytest.mark.slow
def test_image_tag_of_a_commit() -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    result = build_and_push(["tag"], {"CODEBUILD_RESOLVED_SOURCE_VERSION": commit})
    assert result.stdout == "0123456\n"
    here = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True)
    if here.returncode == 0:  # a clone (CI, a developer): git's commit
        assert build_and_push(["tag"], {}).stdout == here.stdout


@pytest.mark.slow
def test_unknown_variant_stops_before_docker_runs() -> None:
    result = build_and_push(["build", "cpu-2.1", "t"], {"AWS_REGION": "us-east-1", "BASE_IMAGE": "x"})
    assert result.returncode == 2
    assert result.stderr.strip() == "Unknown variant cpu-2.1: use cpu, gpu, cpu-2.13 or gpu-2.13."


def test_codebuild_project_request_is_valid_and_allows_the_whole_build() -> None:
    """What the buildspec cannot say: privileged mode, image, compute type, timeout; checked by botocore's
    own validation of a CreateProject request (a stubbed client: nothing is sent)."""
    boto3 = pytest.importorskip("boto3")
    from botocore.stub import Stubber

    request = json.loads((REPO / "codebuild-project.json").read_text())
    filled = json.loads(json.dumps(request).replace("<bucket>", "my-bucket").replace("<account>", "111122223333")
                        .replace("<codebuild-role>", "CodeBuildRole"))
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    client = session.client("codebuild")
    with Stubber(client) as stubber:
        stubber.add_response("create_project", {"project": {"name": filled["name"]}}, filled)
        client.create_project(**filled)  # raises ParamValidationError on a bad request
    environment = request["environment"]
    assert environment["privilegedMode"] is True and environment["image"] == "aws/codebuild/standard:7.0"
    assert environment["computeType"] == "BUILD_GENERAL1_LARGE"
    # CodeBuild's default of 60 minutes stops the suite plus two base images (docs: the estimate is about an hour).
    assert request["timeoutInMinutes"] == 150
    assert request["source"]["buildspec"] == "buildspec.yml"
