"""The image's ENTRYPOINT: `docker run IMAGE [train|serve]`.

SageMaker runs the image with `train` or `serve` as the only argument; some local
runners (SDK v3 local mode) pass nothing, which means `train`. Dispatching here, in
our own exec-form ENTRYPOINT, means the base image's toolkit `train` script never
runs, and this process (PID 1) receives SIGTERM directly.

The functions behind `train` and `serve` are found through the console-script entry
points of our installed distribution, so pyproject.toml's [project.scripts] is the
only place that names their modules (check_image.py reads them the same way).
"""

from __future__ import annotations

import sys
from importlib import metadata

DISTRIBUTION = "lstm-ad-sagemaker"
COMMANDS = ("train", "serve")
USAGE = ("usage: docker run IMAGE [train|serve]  (no argument: train). "
         "For a shell: docker run -it --entrypoint bash IMAGE")


def entry_point(command: str) -> metadata.EntryPoint:
    """Our distribution's console script `command` (not another package's, e.g. the training toolkit's)."""
    for ep in metadata.distribution(DISTRIBUTION).entry_points:
        if ep.group == "console_scripts" and ep.name == command:
            return ep
    raise LookupError(f"{DISTRIBUTION} declares no console script {command!r}")


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "train"
    if command not in COMMANDS:
        print(f"Unknown command {command!r}. {USAGE}", file=sys.stderr)
        return 2
    function = entry_point(command).load()  # loaded only now: a bad command fails fast, without torch
    sys.argv = [command, *argv[2:]]
    function()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
