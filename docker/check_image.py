"""Build-time smoke check of the image (run by the Dockerfile after installing; fails the build).

    python check_image.py --expect-torch 2.1.0

- torch is the base image's, untouched by our pip installs;
- torch and numpy work together (torch 2.1 needs numpy<2: `.numpy()` breaks on numpy 2;
  numpy 2 support arrived in torch 2.3);
- every runtime requirement of the installed lstm-ad-sagemaker package is satisfied;
- the `train` and `serve` console scripts on PATH are ours, not the training toolkit's;
- the train and serve code imports.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib import import_module, metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

PACKAGE = "lstm-ad-sagemaker"


def check_torch_numpy(expected_torch: str | None) -> list[str]:
    import numpy
    import torch

    problems = []
    if expected_torch and torch.__version__ != expected_torch:
        problems.append(f"torch changed from the base image's {expected_torch} to {torch.__version__}")
    torch.zeros(1).numpy()  # raises on an incompatible numpy
    if Version(torch.__version__).release < (2, 3) and Version(numpy.__version__).release >= (2,):
        problems.append(f"torch {torch.__version__} needs numpy<2, found numpy {numpy.__version__}: "
                        "build with NUMPY_REQUIREMENT='numpy<2'")
    print(f"torch {torch.__version__}, numpy {numpy.__version__}, python {sys.version.split()[0]}")
    return problems


def check_requirements() -> list[str]:
    problems = []
    for text in metadata.requires(PACKAGE) or []:
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra (dev) or another platform
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{requirement} is not installed")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{requirement} is not satisfied by the installed {installed}")
    return problems


def check_console_scripts() -> list[str]:
    problems = []
    for name in ("train", "serve"):
        path = shutil.which(name)
        if path is None or "lstm_ad.sagemaker.cli" not in Path(path).read_text(errors="replace"):
            problems.append(f"`{name}` on PATH ({path}) is not lstm_ad's console script")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build-time smoke check of the image.")
    parser.add_argument("--expect-torch", help="the base image's torch version, read before installing")
    parser.add_argument("--skip-console-scripts", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    problems = check_torch_numpy(args.expect_torch) + check_requirements()
    if not args.skip_console_scripts:
        problems += check_console_scripts()
    for module in ("flask", "gunicorn", "lstm_ad.sagemaker.cli", "lstm_ad.sagemaker.server"):
        try:
            import_module(module)
        except Exception as exc:  # report every problem, not just the first
            problems.append(f"import {module} failed: {type(exc).__name__}: {exc}")
    for problem in problems:
        print(f"IMAGE CHECK FAILED: {problem}", file=sys.stderr)
    print("image check passed" if not problems else f"{len(problems)} image check(s) failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
