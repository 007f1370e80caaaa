"""Run a notebook of notebooks/ as its reader would, in one of two ways.

    python scripts/run_notebook.py run NOTEBOOK        execute it top to bottom in local mode (full settings,
                                                       this interpreter as the kernel) and store it with its
                                                       outputs and plots (scripts/run_notebooks.sh runs this)
    python scripts/run_notebook.py aws-check NOTEBOOK  in an environment with only the SageMaker SDK, pandas
                                                       and matplotlib: import every module AWS mode imports,
                                                       then run AWS mode's cells up to the first AWS call
                                                       (scripts/test_notebooks_aws.sh runs this)
    python scripts/run_notebook.py requirements NOTEBOOK  what its `%pip install` cell installs, one a line

`run` stamps the notebook's metadata (`lstm_ad`: who ran it, when, with which SDK, and the SHA-256 of its
code cells), so the tests can tell that the committed outputs belong to the committed code.
`aws-check` and `requirements` need only the standard library themselves.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import shlex
import sys
import tempfile
from datetime import datetime, timezone
from importlib import import_module
from importlib.metadata import version
from pathlib import Path
from typing import Any

RUN_BY = "scripts/run_notebooks.sh"
LOCAL_ONLY = ("lstm_ad", "lstm_ad_local", "torch")  # what AWS mode must never need


def code_sources(notebook: dict[str, Any]) -> list[str]:
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


def sources_sha256(notebook: dict[str, Any]) -> str:
    """The fingerprint of a notebook's code, stored by `run` and checked by the tests."""
    return hashlib.sha256("\n\x00\n".join(code_sources(notebook)).encode()).hexdigest()


# --- run ----------------------------------------------------------------------------------------------


def run(path: Path) -> None:
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="lstm-ad-notebook-") as scratch:
        kernel = _this_interpreter_kernel(Path(scratch) / "jupyter")
        rc_file = Path(scratch) / "matplotlibrc"  # 72 dpi: smaller pictures to store (30-230 KB each)
        rc_file.write_text("figure.dpi: 72\n")
        environment = {"JUPYTER_PATH": str(kernel), "LSTM_AD_NOTEBOOK_MODE": "local", "LSTM_AD_NOTEBOOK_QUICK": "0",
                       "LSTM_AD_NOTEBOOK_WORK_DIR": str(Path(scratch) / "lstm-ad-notebook"),
                       "MPLBACKEND": "module://matplotlib_inline.backend_inline",  # the plots, as Jupyter shows them
                       "MATPLOTLIBRC": str(rc_file),
                       "SAGEMAKER_SUPPRESS_V2_WARNING": "1"}
        saved = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)
        try:
            client = nbclient.NotebookClient(notebook, timeout=1800, kernel_name="lstm-ad-run",
                                             record_timing=False,
                                             resources={"metadata": {"path": str(path.parent.resolve())}})
            client.execute()  # raises CellExecutionError, with the cell and the traceback, when a cell fails
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    notebook.metadata["language_info"] = {"name": "python"}
    notebook.metadata["lstm_ad"] = {
        "run_by": RUN_BY, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "mode": "local",
        "python": sys.version.split()[0], "sagemaker": version("sagemaker"),
        "sources_sha256": sources_sha256(notebook)}
    nbformat.write(notebook, path)
    print(f"{path}: ran and stored with its outputs (sagemaker {version('sagemaker')})")


def _this_interpreter_kernel(folder: Path) -> Path:
    """A kernelspec that starts ipykernel with this very interpreter, found first through JUPYTER_PATH."""
    spec = folder / "kernels" / "lstm-ad-run"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (run_notebook.py)", "language": "python"}))
    return folder


# --- aws-check ------------------------------------------------------------------------------------------


def aws_mode_imports(notebook: dict[str, Any]) -> list[str]:
    """Every module a code cell imports, except inside the local-only branch of `if MODE == "aws": ... else:`."""
    modules: list[str] = []
    for source in code_sources(notebook):
        tree = ast.parse(_without_magics(source))
        local_only = {id(node) for branch in _local_branches(tree) for node in ast.walk(branch)}
        for node in ast.walk(tree):
            if id(node) in local_only:
                continue
            if isinstance(node, ast.Import):
                modules += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules += [f"{node.module}.{alias.name}" if alias.name != "*" else node.module for alias in node.names]
    return list(dict.fromkeys(modules))


def _local_branches(tree: ast.AST) -> list[ast.stmt]:
    branches: list[ast.stmt] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_mode_test(node.test):
            branches += node.orelse
    return branches


def _is_mode_test(test: ast.expr) -> bool:
    """`MODE == "aws"`."""
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "MODE"
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "aws")


def _without_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _importable(name: str) -> None:
    """`import a.b` or `from a import b` (b a module or a name in a)."""
    try:
        import_module(name)
    except ModuleNotFoundError:
        parent, _, attribute = name.rpartition(".")
        if not parent:
            raise
        if not hasattr(import_module(parent), attribute):
            raise ImportError(f"cannot import name {attribute!r} from {parent!r}") from None


def aws_check(path: Path) -> None:
    notebook = json.loads(path.read_text())
    modules = aws_mode_imports(notebook)
    forbidden = [m for m in modules if m.split(".")[0] in LOCAL_ONLY]
    if forbidden:
        sys.exit(f"{path}: AWS mode imports {', '.join(forbidden)}, which a Marketplace buyer does not have")
    for module in modules:
        _importable(module)
    print(f"{path}: the {len(modules)} imports of AWS mode work here")
    ran = _run_cells_before_aws(path, notebook)
    print(f"{path}: AWS mode ran {ran} code cells up to its first AWS call")


def _run_cells_before_aws(path: Path, notebook: dict[str, Any]) -> int:
    """Execute the code cells in AWS mode, in order, up to the first one that calls AWS (the first with an
    `if MODE == "aws":`), as a kernel would; returns how many ran."""
    os.environ["LSTM_AD_NOTEBOOK_MODE"] = "aws"
    os.environ.setdefault("MPLBACKEND", "Agg")
    namespace: dict[str, Any] = {"__name__": "__main__"}
    here = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="lstm-ad-aws-check-") as scratch:
        os.environ["LSTM_AD_NOTEBOOK_WORK_DIR"] = str(Path(scratch) / "work")
        os.chdir(path.parent)
        try:
            for number, source in enumerate(code_sources(notebook)):
                tree = ast.parse(_without_magics(source))
                if any(isinstance(node, ast.If) and _is_mode_test(node.test) for node in ast.walk(tree)):
                    if "train_file" not in namespace:
                        sys.exit(f"{path}: AWS mode reached an AWS call before its data were written")
                    return number
                exec(compile(tree, f"{path.name}, code cell {number + 1}", "exec"), namespace)
        finally:
            os.chdir(here)
    sys.exit(f"{path}: no cell calls AWS in AWS mode")


def requirements(path: Path) -> None:
    """The requirements of the notebook's `%pip install` line (commented out in the notebook)."""
    for source in code_sources(json.loads(path.read_text())):
        for line in source.splitlines():
            words = shlex.split(line.lstrip("# ").split("#")[0])
            if words[:2] == ["%pip", "install"]:
                print("\n".join(word for word in words[2:] if not word.startswith("-")))
                return
    sys.exit(f"{path}: no %pip install line")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "aws-check", "requirements"])
    parser.add_argument("notebook", type=Path)
    args = parser.parse_args(argv)
    {"run": run, "aws-check": aws_check, "requirements": requirements}[args.command](args.notebook)


if __name__ == "__main__":
    main()
