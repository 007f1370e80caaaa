"""The SDK v3 notebook runs top to bottom in local mode (real train and serve); how it is stored (run by
scripts/run_notebooks.sh, with its outputs) is checked by tests/test_notebook.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "lstm_ad_sdk_v3.ipynb"
KERNEL = "lstm-ad-sdk-v3-test"


def test_notebook_uses_sdk_v3_only() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    source = "\n".join(cell.source for cell in code)
    assert 'sagemaker>=3.27,<4' in source  # the install cell pins the SDK's major version
    for removed in ("sagemaker.estimator", "sagemaker.algorithm", "sagemaker.serializers", "AlgorithmEstimator"):
        assert removed not in source, removed  # gone in v3: no code cell may use them


def _this_interpreter_kernel(folder: Path) -> Path:
    """A kernelspec that starts ipykernel with this very interpreter (the SDK v3 venv), whatever
    `python3` kernels Jupyter finds elsewhere; JUPYTER_PATH puts it first."""
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (SDK v3 tests)", "language": "python"}))
    return folder


@pytest.mark.slow  # a Jupyter kernel and the notebook's train and serve processes
def test_notebook_runs_in_local_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quick settings: generated data, a tiny model, a few epochs; the kernel is this interpreter."""
    pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel in the SDK v3 venv")
    monkeypatch.setenv("JUPYTER_PATH", str(_this_interpreter_kernel(tmp_path / "jupyter")))
    monkeypatch.setenv("LSTM_AD_NOTEBOOK_MODE", "local")
    monkeypatch.setenv("LSTM_AD_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("LSTM_AD_NOTEBOOK_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("LSTM_AD_NOTEBOOK_KEEP", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name=KERNEL,
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError with the cell and traceback when a cell fails

    out_files = list((tmp_path / "work" / "predictions").glob("*.out"))
    assert [p.name for p in out_files] == ["test.csv.out"]
    test_rows = len((tmp_path / "work" / "data" / "test" / "test.csv").read_text().splitlines())
    assert len(out_files[0].read_text().splitlines()) == test_rows
    text = "\n".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                     for output in cell.outputs)
    assert "sagemaker 3." in text and "MODE=local" in text  # the SDK v3 imports ran
    assert "most anomalous row:" in text and "rows; last three:" in text and "cleaned up" in text
    assert "rows x 8 columns" in text  # the optional outputs the model stores (default-output)
