"""Static checks of the image definition and its delivery scripts (no Docker engine needed).

hadolint and shellcheck run when installed (the dev extra ships both as wheels); the
Dockerfile is also parsed here and held to the SageMaker container contract. The
entrypoint and the build-time image check are real scripts: they run here too.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from conftest import REPO, TINY_HYPERPARAMETERS, make_opt_ml, sine_series

DOCKERFILE = REPO / "Dockerfile"
DLC = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training"
CPU_TAG = "2.1.0-cpu-py310-ubuntu20.04-sagemaker"
GPU_TAG = "2.1.0-gpu-py310-cu121-ubuntu20.04-sagemaker"
SHELL_SCRIPTS = ["scripts/docker_smoke_test.sh", "scripts/docker_local.sh", "scripts/build_and_push.sh"]
VENV_BIN = Path(sys.executable).parent


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per Dockerfile instruction; comments dropped, continuations joined."""
    result, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    return result


@pytest.fixture(scope="module")
def parsed() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def arg_defaults(parsed: list[tuple[str, str]], overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The global ARGs (before FROM), each default expanded with the earlier ones, as docker does."""
    values: dict[str, str] = {}
    for keyword, args in parsed:
        if keyword == "FROM":
            break
        name, _, default = args.partition("=")
        values[name] = (overrides or {}).get(name) or re.sub(
            r"\$\{(\w+)\}", lambda m: values[m.group(1)], default.strip('"'))
    return values


def values_of(parsed: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for kw, args in parsed if kw == keyword]


def tool(name: str) -> str:
    path = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]' brings it)")
    return path


def test_hadolint_passes() -> None:
    result = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_shellcheck_passes(script: str) -> None:
    result = subprocess.run([tool("shellcheck"), str(REPO / script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert os.access(REPO / script, os.X_OK), f"{script} is not executable"


def test_base_image_defaults_to_the_pytorch_21_cpu_dlc(parsed: list[tuple[str, str]]) -> None:
    assert values_of(parsed, "FROM") == ["${BASE_IMAGE}"]
    assert arg_defaults(parsed)["BASE_IMAGE"] == f"{DLC}:{CPU_TAG}"
    assert arg_defaults(parsed, {"BASE_TAG": GPU_TAG})["BASE_IMAGE"] == f"{DLC}:{GPU_TAG}"
    other = arg_defaults(parsed, {"REGION": "eu-south-1", "DLC_ACCOUNT": "692866216735"})["BASE_IMAGE"]
    assert other == f"692866216735.dkr.ecr.eu-south-1.amazonaws.com/pytorch-training:{CPU_TAG}"
    script = (REPO / "scripts" / "build_and_push.sh").read_text()  # builds the same two tags
    assert f'CPU_TAG="{CPU_TAG}"' in script and f'GPU_TAG="{GPU_TAG}"' in script


def test_entrypoint_is_our_exec_form_dispatcher(parsed: list[tuple[str, str]]) -> None:
    entrypoint, = values_of(parsed, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["python3", "/opt/program/entrypoint.py"]  # exec form: PID 1 gets SIGTERM
    assert json.loads(values_of(parsed, "CMD")[0]) == ["train"]
    copied = [args.split() for args in values_of(parsed, "COPY")]
    assert any("docker/entrypoint.py" in words and words[-1] == "/opt/program/" for words in copied)


def test_sagemaker_contract(parsed: list[tuple[str, str]]) -> None:
    env = " ".join(values_of(parsed, "ENV"))
    assert "PYTHONUNBUFFERED=1" in env  # metric lines reach the logs as they are printed
    assert values_of(parsed, "EXPOSE") == ["8080"]
    assert any("com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true" in v for v in values_of(parsed, "LABEL"))
    assert values_of(parsed, "USER") == []  # SageMaker expects root
    assert values_of(parsed, "ADD") == []  # nothing fetched from URLs
    for keyword, args in parsed:  # /opt/ml is mounted over at run time: nothing of ours may live there
        assert "/opt/ml" not in args, (keyword, args)


def test_install_keeps_the_base_torch_and_pins_numpy(parsed: list[tuple[str, str]]) -> None:
    run = " ".join(values_of(parsed, "RUN"))
    assert 'echo "torch==${TORCH_VERSION%%+*}" > /tmp/constraints.txt' in run
    assert "-c /tmp/constraints.txt" in run
    assert "--no-deps /tmp/lstm-ad-src" in run
    assert 'check_image.py --expect-torch "$(cat /tmp/base-torch-version)"' in run
    assert run.index("requirements.txt") < run.index("--no-deps")  # dependencies cached apart from our code
    assert "torch.zeros(1).numpy()" in run
    numpy_arg = [args for kw, args in parsed if kw == "ARG" and args.startswith("NUMPY_REQUIREMENT=")]
    assert numpy_arg == ['NUMPY_REQUIREMENT="numpy<2"']


def test_requirements_cover_the_package_dependencies() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    needed = {re.split(r"[<>=!~ \[]", dep)[0].lower() for dep in pyproject["project"]["dependencies"]}
    lines = (REPO / "docker" / "requirements.txt").read_text().splitlines()
    pinned = {re.split(r"[<>=!~ ]", line)[0].lower(): line for line in lines if line and not line.startswith("#")}
    assert needed - {"torch", "numpy"} <= set(pinned), needed - set(pinned)
    assert re.fullmatch(r"flask==[\d.]+", pinned["flask"]) and re.fullmatch(r"gunicorn==[\d.]+", pinned["gunicorn"])


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        regex = re.escape(glob).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_sends_only_what_the_build_copies(parsed: list[tuple[str, str]]) -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    sources = [word for args in values_of(parsed, "COPY") for word in shlex.split(args)[:-1]]
    tracked = subprocess.run(["git", "ls-files", *sources], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    wanted = [p for p in tracked if not fnmatch.fnmatch(p, "*.pyc")] + ["container/lstm_ad/sagemaker/cli.py"]
    assert [p for p in wanted if dockerignored(p, patterns)] == []
    unwanted = [".venv/bin/python", ".git/HEAD", "tests/test_config.py", "scripts/test.sh",
                "container/lstm_ad/sagemaker/__pycache__/cli.cpython-310.pyc",
                "container/lstm_ad_local/jobs.py", "container/lstm_ad_sagemaker.egg-info/PKG-INFO"]
    assert [p for p in unwanted if not dockerignored(p, patterns)] == []


def test_copied_sources_build_a_wheel_with_our_console_scripts(parsed: list[tuple[str, str]], tmp_path: Path) -> None:
    """What the Dockerfile copies to /tmp/lstm-ad-src is enough for `pip install --no-deps` to build."""
    pytest.importorskip("setuptools", reason="building the wheel without isolation needs setuptools")
    root = tmp_path / "root"
    for args in values_of(parsed, "COPY"):
        *sources, dest = shlex.split(args)
        if not dest.startswith("/tmp/lstm-ad-src"):
            continue
        for source in sources:
            target = root / dest.lstrip("/")
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / source, target / Path(source).name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path / "dist"), str(root / "tmp" / "lstm-ad-src")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    wheel, = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "lstm_ad/sagemaker/cli.py" in names and "lstm_ad/training.py" in names
    assert not [name for name in names if name.startswith("lstm_ad_local/")]  # the tools stay out of the image
    assert "train = lstm_ad.sagemaker.cli:train" in entry_points
    assert "serve = lstm_ad.sagemaker.cli:serve" in entry_points
    assert "lstm-ad-local" not in entry_points


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


def test_entrypoint_without_argument_trains_with_no_network(tmp_path: Path) -> None:
    isolate = can_isolate_network()
    base = make_opt_ml(tmp_path, TINY_HYPERPARAMETERS, {"training": {"train.csv": sine_series(300, columns=2)}})
    result = run_entrypoint([], base, isolate=isolate)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (base / "model" / "model.json").is_file() and (base / "model" / "weights.npz").is_file()
    assert "train:mse=" in result.stdout
    if not isolate:
        pytest.skip("trained, but `unshare --net` is unavailable here, so network isolation was not tested")


def test_entrypoint_rejects_unknown_commands(tmp_path: Path) -> None:
    result = run_entrypoint(["bogus"], tmp_path)
    assert result.returncode == 2
    assert "Unknown command 'bogus'" in result.stderr and "train|serve" in result.stderr


def test_build_time_image_check_runs_here() -> None:
    pytest.importorskip("lstm_ad.sagemaker.server", reason="the serve module is not in this checkout yet")
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
