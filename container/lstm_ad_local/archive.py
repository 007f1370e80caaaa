"""Unpacking a model.tar.gz that may have been tampered with, the same on every Python >= 3.10.

`tarfile.extractall` without a filter writes wherever a member's name points (`../x`, `/etc/x`) and
follows the links the archive itself made; the `filter="data"` that stops this exists only from Python
3.10.12 / 3.11.4 on. So the archive is checked here, whole, before anything is written: every member
must be a regular file or a folder whose name stays inside the target folder. Links of any kind,
devices and FIFOs are refused (a model artifact of this algorithm has none). Files are then written
by us, from the archive's bytes, with this process's default permissions: no owner, mode or time of
the archive is applied.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path, PurePosixPath

from lstm_ad.errors import excerpt

from .errors import LocalJobError


def safe_extract(archive_path: Path, folder: Path) -> list[Path]:
    """Unpack `archive_path` (any compression tarfile reads) into `folder`; the files written.

    Raises LocalJobError naming the first unsafe member, before writing anything, or when the file is
    not a tar archive."""
    try:
        with tarfile.open(archive_path, "r:*") as archive:
            members = archive.getmembers()
            for member in members:
                _check(member, archive_path)
            return [_write(archive, member, folder) for member in members]
    except (tarfile.TarError, EOFError, OSError) as exc:
        reason = str(exc).splitlines()[0].rstrip(":") if str(exc).strip() else type(exc).__name__
        raise LocalJobError(f"Cannot unpack model artifact {archive_path} ({reason}). Expected the model.tar.gz "
                            "of a training job.") from exc


def _check(member: tarfile.TarInfo, archive_path: Path) -> None:
    name = PurePosixPath(member.name)
    where = f"Unsafe model artifact {archive_path}: member {excerpt(member.name)}"
    if member.issym() or member.islnk():
        raise LocalJobError(f"{where} is a link (to {excerpt(member.linkname)}); a model artifact holds only "
                            "files and folders. Use the model.tar.gz written by the training job.")
    if not (member.isfile() or member.isdir()):
        raise LocalJobError(f"{where} is neither a file nor a folder. Use the model.tar.gz written by the "
                            "training job.")
    if name.is_absolute() or ".." in name.parts or "\\" in member.name or "\x00" in member.name:
        raise LocalJobError(f"{where} would be written outside the model folder. Use the model.tar.gz written "
                            "by the training job.")


def _write(archive: tarfile.TarFile, member: tarfile.TarInfo, folder: Path) -> Path:
    target = folder.joinpath(*PurePosixPath(member.name).parts)
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    source = archive.extractfile(member)
    if source is None:  # not possible for a regular file; checked for the type checker
        raise LocalJobError(f"Cannot read member {excerpt(member.name)} of the model artifact.")
    with source, open(target, "wb") as out:
        shutil.copyfileobj(source, out)
    return target
