"""Unpacking model.tar.gz in the local tools: crafted archives write nothing, on any Python >= 3.10.

The check is our own (lstm_ad_local/archive.py), not tarfile's extraction filter, which Python 3.10
lacks before 3.10.12: the same code runs on the image's Python 3.10 (scripts/test_compat.sh) and here.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from lstm_ad_local.archive import safe_extract
from lstm_ad_local.errors import LocalJobError
from lstm_ad_local.jobs import pack_folder
from lstm_ad_local.transform import install_model


def _file(name: str, data: bytes = b"pwned") -> Callable[[tarfile.TarFile], None]:
    def add(archive: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return add


def _special(name: str, kind: bytes, linkname: str = "") -> Callable[[tarfile.TarFile], None]:
    def add(archive: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, linkname
        archive.addfile(info)
    return add


def crafted(path: Path, *members: Callable[[tarfile.TarFile], None]) -> Path:
    """A model.tar.gz whose first member is a harmless model.json, then the given members."""
    with tarfile.open(path, "w:gz") as archive:
        for add in (_file("model.json", b"{}"), *members):
            add(archive)
    return path


HOSTILE = [
    # (id, members, what the message says about the member)
    ("parent path", [_file("../outside.txt")], "'../outside.txt' would be written outside the model folder"),
    ("parent inside a path", [_file("sub/../../outside.txt")], "'sub/../../outside.txt' would be written outside"),
    ("absolute path", [_file("/tmp/lstm-ad-archive-test/outside.txt")],
     "'/tmp/lstm-ad-archive-test/outside.txt' would be written outside"),
    ("symlink out", [_special("link", tarfile.SYMTYPE, "../outside.txt"), _file("link")],
     "'link' is a link (to '../outside.txt')"),
    ("symlink to a folder", [_special("etc", tarfile.SYMTYPE, "/etc"), _file("etc/cron.d/x")],
     "'etc' is a link (to '/etc')"),
    ("hardlink out", [_special("hard", tarfile.LNKTYPE, "../outside.txt")], "'hard' is a link (to '../outside.txt')"),
    ("fifo", [_special("pipe", tarfile.FIFOTYPE)], "'pipe' is neither a file nor a folder"),
    ("device", [_special("sda", tarfile.BLKTYPE)], "'sda' is neither a file nor a folder"),
    ("long name", [_file("../" + "a" * 5000)], "'../" + "a" * 34 + "...' would be written outside"),
]


@pytest.mark.parametrize("members, message", [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_a_crafted_archive_is_refused_before_anything_is_written(tmp_path: Path, members: list, message: str) -> None:
    archive = crafted(tmp_path / "evil.tar.gz", *members)
    model_dir = tmp_path / "job" / "model"
    with pytest.raises(LocalJobError) as info:
        install_model(archive, model_dir)
    assert str(info.value) == (f"Unsafe model artifact {archive}: member {message}"
                               + str(info.value).split(message, 1)[1])
    assert "Use the model.tar.gz written by the training job." in str(info.value)
    assert list(model_dir.iterdir()) == []  # not even the harmless first member
    assert not (tmp_path / "job" / "outside.txt").exists() and not (tmp_path / "outside.txt").exists()
    assert not Path("/tmp/lstm-ad-archive-test").exists()


@pytest.mark.slow
def test_the_command_line_reports_a_crafted_archive(tmp_path: Path) -> None:
    archive = crafted(tmp_path / "evil.tar.gz", _file("../outside.txt"))
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "x.csv").write_text("1,2\n")
    result = subprocess.run([str(Path(sys.executable).parent / "lstm-ad-local"), "transform", "--model", str(archive),
                             "--input", str(tmp_path / "input"), "--output", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert (f"lstm-ad-local transform: Unsafe model artifact {archive}: member '../outside.txt' would be written "
            "outside the model folder.") in result.stderr
    assert not (tmp_path / "outside.txt").exists()


def test_an_artifact_packed_like_the_training_job_unpacks_whole(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "extra").mkdir(parents=True)
    (model / "model.json").write_text('{"format": 3}')
    (model / "extra" / "weights.npz").write_bytes(bytes(range(256)) * 40)
    archive = pack_folder(model, tmp_path / "model.tar.gz")
    written = safe_extract(archive, tmp_path / "unpacked")
    assert sorted(p.relative_to(tmp_path / "unpacked").as_posix() for p in written) == [
        "extra", "extra/weights.npz", "model.json"]
    assert (tmp_path / "unpacked" / "extra" / "weights.npz").read_bytes() == bytes(range(256)) * 40


def test_not_a_tar_archive_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "model.tar.gz").write_bytes(b"not a tar file at all")
    with pytest.raises(LocalJobError) as info:
        install_model(tmp_path / "model.tar.gz", tmp_path / "model")
    assert str(info.value) == (f"Cannot unpack model artifact {tmp_path / 'model.tar.gz'} (file could not be opened "
                               "successfully). Expected the model.tar.gz of a training job.")
