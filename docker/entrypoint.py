"""The image's ENTRYPOINT: `docker run IMAGE [train|serve]`.

SageMaker runs the image with `train` or `serve` as the only argument; some local
runners (SDK v3 local mode) pass nothing, which means `train`. Dispatching here, in
our own exec-form ENTRYPOINT, means the base image's toolkit `train` script never
runs, and this process (PID 1) receives SIGTERM directly.
"""

from __future__ import annotations

import sys

USAGE = ("usage: docker run IMAGE [train|serve]  (no argument: train). "
         "For a shell: docker run -it --entrypoint bash IMAGE")


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "train"
    if command not in ("train", "serve"):
        print(f"Unknown command {command!r}. {USAGE}", file=sys.stderr)
        return 2
    from lstm_ad.sagemaker import cli  # imported here so that a bad command fails fast, without loading torch

    sys.argv = [command, *argv[2:]]
    entry = cli.train if command == "train" else cli.serve
    entry()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
