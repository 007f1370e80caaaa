"""A local job's channels: the files SageMaker would download, linked (or copied) into the job folder.

The job folder's config files are written by the shell's own writer, beside its reader
(lstm_ad.sagemaker.paths.write_training_config), which the tests use too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def link_channel(source: Path, target: Path) -> None:
    """Hard-link (cheap) or copy a file or folder into a channel folder, keeping the folder structure."""
    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:  # another file system, or links not allowed
            shutil.copy2(src, dst)

    target.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, copy_function=link_or_copy, dirs_exist_ok=True)
    else:
        link_or_copy(str(source), str(target / source.name))
