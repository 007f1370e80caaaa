"""The notebooks: stored as scripts/run_notebooks.sh ran them, runnable top to bottom in local mode, and in
AWS mode needing nothing of this repository (the v3 notebook's local run is in tests/sdk_v3; the AWS-mode
imports in environments with only the SDK, pandas and matplotlib: scripts/test_notebooks_aws.sh)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lstm_ad.sagemaker.metrics import METRICS
from lstm_ad_local.demo_data import make_demo

nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat (dev extra)")
nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient (dev extra)")
pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel (dev extra)")
pytest.importorskip("matplotlib", reason="the notebook test needs matplotlib (dev extra)")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import run_notebook  # noqa: E402

NOTEBOOK = REPO / "notebooks" / "lstm_ad.ipynb"
NOTEBOOKS = {"v2": (NOTEBOOK, "sagemaker>=2.257,<3", "2."),
             "v3": (REPO / "notebooks" / "lstm_ad_sdk_v3.ipynb", "sagemaker>=3.27,<4", "3.")}


def code_cell(notebook: Any, marker: str) -> str:
    found = [c.source for c in notebook.cells if c.cell_type == "code" and marker in c.source]
    assert len(found) == 1, (marker, len(found))
    return found[0]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_as_run_notebooks_sh_ran_it(name: str) -> None:
    path, pin, sdk_major = NOTEBOOKS[name]
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    stamp = notebook.metadata.get("lstm_ad", {})
    assert stamp.get("run_by") == "scripts/run_notebooks.sh" and stamp.get("mode") == "local", stamp
    assert stamp["sources_sha256"] == run_notebook.sources_sha256(notebook), (
        f"{path.name}: its code changed since its outputs were made: run bash scripts/run_notebooks.sh")
    assert stamp["sagemaker"].startswith(sdk_major)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))  # all of them, in order
    outputs = [output for cell in code for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.output_type == "stream" and "Traceback" in o.text]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # the data; predictions and score; threshold
    text = "\n".join(o.get("text", "") for o in outputs)
    assert "MODE=local, DATA=demo, QUICK=False" in text and "most anomalous row:" in text and "cleaned up" in text
    assert "rows x 8 columns" in text  # score, 3 predictions, alarm, 3 attributions: default-output at work
    assert pin in "\n".join(cell.source for cell in code)  # the install cell pins the SDK's major version


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_data_are_the_demo_data(name: str, tmp_path: Path) -> None:
    """The notebook generates its data with NumPy alone (AWS mode has no lstm_ad_local): the same as the demo's."""
    notebook = nbformat.read(NOTEBOOKS[name][0], as_version=4)
    namespace: dict[str, Any] = {"np": np, "Path": Path, "DATA": "demo", "QUICK": True, "work": tmp_path}
    exec(code_cell(notebook, "def demo_series("), namespace)
    train, test, labels, _ = make_demo(1200, 600)
    assert np.array_equal(namespace["train_values"], train) and np.array_equal(namespace["test_values"], test)
    assert np.array_equal(namespace["labels"], labels)
    assert np.array_equal(np.loadtxt(tmp_path / "data" / "test" / "test.csv", delimiter=","), np.round(test, 6))
    full = namespace["demo_series"](2500, 1200)  # the settings of a full run
    assert all(np.array_equal(a, b) for a, b in zip(full, make_demo(2500, 1200)[:3], strict=True))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_metric_definitions_are_the_algorithms(name: str) -> None:
    source = code_cell(nbformat.read(NOTEBOOKS[name][0], as_version=4), "METRIC_NAMES = [")
    names = next(ast.literal_eval(node.value) for node in ast.walk(ast.parse(source))
                 if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "METRIC_NAMES")
    assert names == [metric.name for metric in METRICS]
    assert 'f"{name}=([0-9.eE+-]+);"' in source
    assert all(metric.regex == f"{metric.name}=([0-9.eE+-]+);" for metric in METRICS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_aws_mode_needs_nothing_of_this_repository(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS[name][0], as_version=4)
    imports = run_notebook.aws_mode_imports(notebook)
    assert [m for m in imports if m.split(".")[0] in ("lstm_ad", "lstm_ad_local", "torch")] == []
    assert any(m.startswith("sagemaker.") for m in imports)
    everywhere = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "from lstm_ad_local.jobs import run_training_job" in everywhere  # local mode's, left out above


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_refuses_an_answer_without_the_optional_columns(name: str, tmp_path: Path) -> None:
    """pandas' read_csv fills missing columns with NaN silently: the notebook counts them first."""
    source = code_cell(nbformat.read(NOTEBOOKS[name][0], as_version=4), "output = pd.read_csv(out_file")
    rows = [",,,"] * 3 + ["-1.5,0.1,0.2,0.3"] * 7
    (tmp_path / "test.csv.out").write_text("\n".join(rows) + "\n")
    namespace = {"pd": pd, "out_file": tmp_path / "test.csv.out", "test_values": np.zeros((10, 3))}
    with pytest.raises(ValueError, match=r"test\.csv\.out has 4 columns, expected 8 \(score,pred_1,pred_2,pred_3,"
                                         r"alarm,attr_1,attr_2,attr_3\): train with default-output=alarm,attribution"):
        exec(source, namespace)
    (tmp_path / "test.csv.out").write_text("\n".join(row + ",1,0.5,0.25,0.25" for row in rows[3:]) + "\n")
    exec(source, {**namespace, "test_values": np.zeros((7, 3))})


@pytest.mark.slow
def test_notebook_runs_in_local_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quick settings: generated data, a tiny model, a few epochs; the kernel is this interpreter."""
    monkeypatch.setenv("LSTM_AD_NOTEBOOK_MODE", "local")
    monkeypatch.setenv("LSTM_AD_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("LSTM_AD_NOTEBOOK_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("LSTM_AD_NOTEBOOK_KEEP", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError with the cell and traceback when a cell fails

    out_files = list((tmp_path / "work" / "predictions").glob("*.out"))
    assert [p.name for p in out_files] == ["test.csv.out"]
    test_rows = len((tmp_path / "work" / "data" / "test" / "test.csv").read_text().splitlines())
    assert len(out_files[0].read_text().splitlines()) == test_rows
    text = "\n".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                     for output in cell.outputs)
    assert "MODE=local" in text and "most anomalous row:" in text and "cleaned up" in text
    assert "rows x 8 columns" in text
