"""scripts/demo_figure.py draws the README's picture from what scripts/demo.sh writes (here: the same local
jobs on smaller demo data)."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from lstm_ad_local.archive import safe_extract
from lstm_ad_local.demo_data import write_demo_data
from lstm_ad_local.jobs import pack_folder, run_training_job
from lstm_ad_local.transform import run_transform_job

pytestmark = pytest.mark.slow  # every test here starts `train` (a process)

REPO = Path(__file__).resolve().parents[1]
pytest.importorskip("matplotlib", reason="the picture needs matplotlib (dev extra)")


def draw(demo: Path, output: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "demo_figure.py"), "--demo-dir", str(demo),
                           "--output", str(output)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layout scripts/demo.sh leaves: data/, model/model.tar.gz, predictions/test.csv.out."""
    folder = tmp_path_factory.mktemp("demo")
    data = write_demo_data(folder / "data", train_rows=1200, test_rows=600)
    hyperparameters = {"context-length": 50, "prediction-length": 1, "hidden-size": 8, "num-layers": 1, "epochs": 2,
                       "sequence-stride": 5}
    model = run_training_job({"training": data.train.parent}, hyperparameters, folder / "model", echo=None)
    run_transform_job(model.model_artifact, data.test.parent, folder / "predictions")
    return folder


def test_the_picture_shows_the_series_score_labels_and_alarms(demo: Path, tmp_path: Path) -> None:
    result = draw(demo, tmp_path / "pictures" / "demo.png")
    assert result.returncode == 0, result.stderr
    png = (tmp_path / "pictures" / "demo.png").read_bytes()
    width, height = struct.unpack(">II", png[16:24])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and width == 900 and height in (413, 414)  # 10 x 4.6 in at 90 dpi (rounding
    # differs between matplotlib versions)
    match = re.fullmatch(r".*demo\.png: (\d+) alarm rows \((\d+) inside a labelled anomaly\), threshold (-?[\d.]+), "
                         r"550 scored rows\n", result.stdout)
    assert match, result.stdout
    assert 0 < int(match.group(2)) <= int(match.group(1))  # the alarms find the anomalies


def test_a_model_without_a_stored_threshold_is_named(demo: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    (old / "model").mkdir(parents=True)
    safe_extract(demo / "model" / "model.tar.gz", old / "unpacked")
    meta = (old / "unpacked" / "model.json").read_text()
    (old / "unpacked" / "model.json").write_text(re.sub(r'"alarm_threshold": [^,}]+', '"alarm_threshold": null', meta))
    pack_folder(old / "unpacked", old / "model" / "model.tar.gz")
    for part in ("data", "predictions"):
        (old / part).symlink_to(demo / part)
    result = draw(old, tmp_path / "demo.png")
    assert result.returncode == 1
    archive = old / "model" / "model.tar.gz"
    assert result.stderr.strip() == f"{archive} stores no alarm threshold: run scripts/demo.sh again"
