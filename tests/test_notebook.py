"""The example notebook runs top to bottom in local mode (real train and serve), and is stored without outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat (dev extra)")
nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient (dev extra)")
pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel (dev extra)")
pytest.importorskip("matplotlib", reason="the notebook test needs matplotlib (dev extra)")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "lstm_ad.ipynb"


def test_notebook_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)
    source = "\n".join(cell.source for cell in notebook.cells)
    assert 'sagemaker>=2.257,<3' in source  # v3 removed Estimator, AlgorithmEstimator and transformer()


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
