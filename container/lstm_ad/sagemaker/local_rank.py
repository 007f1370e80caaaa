"""`python -m lstm_ad.sagemaker.local_rank K`: local rank K (>= 1) of a host that runs several training
processes (one per GPU), started by the host's `train` process (ranks.py) with the same job folder.

It trains as every rank does but writes no failure file (the host's `train` process owns it; when this
process fails, that one loses contact and says so) and exits with the job's exit code.
"""

from __future__ import annotations

import sys

from .cli import StopFlag, configure_process, exit_process, run_train
from .paths import Paths, base_dir


def main(argv: list[str]) -> int:
    stop = StopFlag()
    stop.install()  # before torch loads, as in `train`
    configure_process()
    return run_train(Paths(base_dir()), stop, local_rank=int(argv[0]))


if __name__ == "__main__":
    exit_process(main(sys.argv[1:]))
