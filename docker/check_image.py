"""Build-time smoke check of the image (run by the Dockerfile after installing; fails the build).

    python check_image.py --expect-torch 2.1.0

- torch is the base image's, untouched by our pip installs;
- torch and numpy work together (torch 2.1 needs numpy<2: `.numpy()` breaks on numpy 2;
  numpy 2 support arrived in torch 2.3);
- every runtime requirement of the installed lstm-ad-sagemaker package is satisfied (`pip check`,
  read for our distribution only: a base image may carry conflicts of its own);
- the `train` and `serve` console scripts on PATH are ours, not the training toolkit's;
- the train and serve code imports.

Standard library only (plus pip, which installed us): the image has no `packaging` of its own.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from importlib import import_module
from pathlib import Path

from entrypoint import COMMANDS, DISTRIBUTION, entry_point

# Imported besides the modules of the `train`/`serve` entry points (serve imports its server lazily).
EXTRA_MODULES = ("flask", "gunicorn", "lstm_ad.sagemaker.server")


def release(version: str) -> tuple[int, ...]:
    """(major, minor) of a version string such as 2.1.0+cu121 or 2.0.0rc1."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def check_torch_numpy(expected_torch: str | None) -> list[str]:
    import numpy
    import torch

    problems = []
    if expected_torch and torch.__version__ != expected_torch:
        problems.append(f"torch changed from the base image's {expected_torch} to {torch.__version__}")
    torch.zeros(1).numpy()  # raises on an incompatible numpy
    if release(torch.__version__) < (2, 3) and release(numpy.__version__) >= (2, 0):
        problems.append(f"torch {torch.__version__} needs numpy<2, found numpy {numpy.__version__}: "
                        "build with NUMPY_REQUIREMENT='numpy<2'")
    print(f"torch {torch.__version__}, numpy {numpy.__version__}, python {sys.version.split()[0]}")
    return problems


def check_requirements() -> list[str]:
    """`pip check` lines about our distribution (e.g. 'lstm-ad-sagemaker 0.1.0 requires flask, which is
    not installed.')."""
    result = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    ours = re.compile(rf"^{re.escape(DISTRIBUTION)}\s", re.IGNORECASE)
    return [line for line in result.stdout.splitlines() if ours.match(line)]


def check_console_scripts() -> list[str]:
    problems = []
    for name in COMMANDS:
        module = entry_point(name).module
        path = shutil.which(name)
        if path is None or module not in Path(path).read_text(errors="replace"):
            problems.append(f"`{name}` on PATH ({path}) is not {DISTRIBUTION}'s console script ({module})")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build-time smoke check of the image.")
    parser.add_argument("--expect-torch", help="the base image's torch version, read before installing")
    args = parser.parse_args(argv)
    problems = check_torch_numpy(args.expect_torch) + check_requirements() + check_console_scripts()
    modules = [*EXTRA_MODULES, *sorted({entry_point(name).module for name in COMMANDS})]
    for module in modules:
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
