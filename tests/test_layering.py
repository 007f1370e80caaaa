"""The architecture, read from the imports: the algorithm at the bottom, the SageMaker shell above it,
the local tools beside them. Nothing imports upward, and the image gets no tools."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

CONTAINER = REPO / "container"
ALGORITHM = CONTAINER / "lstm_ad"
SHELL = ALGORITHM / "sagemaker"
TOOLS = CONTAINER / "lstm_ad_local"


def module_name(path: Path) -> str:
    parts = path.relative_to(CONTAINER).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved), at any depth."""
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base)
                found.add(f"{prefix}.{node.module}" if node.module else prefix)
                found.update(f"{prefix}.{alias.name}" for alias in node.names if not node.module)
            else:
                found.add(node.module or "")
    return found


def offending_imports(folder: Path, forbidden: tuple[str, ...], skip: Path | None = None) -> list[str]:
    problems = []
    for path in sorted(folder.rglob("*.py")):
        if skip is not None and skip in path.parents:
            continue
        for name in imported_modules(path):
            if name.startswith(forbidden):
                problems.append(f"{path.relative_to(REPO)} imports {name}")
    return problems


def test_the_algorithm_imports_neither_the_shell_nor_the_tools():
    assert offending_imports(ALGORITHM, ("lstm_ad.sagemaker", "lstm_ad_local"), skip=SHELL) == []


def test_the_shell_does_not_import_the_tools():
    assert offending_imports(SHELL, ("lstm_ad_local",)) == []


def test_the_import_reader_sees_relative_imports():
    """The checks above would pass vacuously if relative imports were misread."""
    assert "lstm_ad.sagemaker.paths" in imported_modules(SHELL / "cli.py")
    assert "lstm_ad.errors" in imported_modules(SHELL / "cli.py")
    assert "lstm_ad.training" in imported_modules(SHELL / "cli.py")  # imported inside a function
    assert "lstm_ad.forecast" in imported_modules(ALGORITHM / "predictor.py")


def test_no_module_loads_tensors_with_torch_load():
    """Model files and checkpoints never go through torch.load (it unpickles; CVE-2025-32434 in torch < 2.6)."""
    calls = []
    for path in sorted(CONTAINER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("load", "save") and \
                    isinstance(node.value, ast.Name) and node.value.id == "torch":
                calls.append(f"{path.relative_to(REPO)}:{node.lineno} torch.{node.attr}")
    assert calls == []


def test_the_module_map_in_the_development_docs_matches_the_code():
    """docs/development.md draws the tree of container/; it lists exactly the modules there are."""
    text = (REPO / "docs" / "development.md").read_text()
    tree = text.split("```\ncontainer/\n", 1)[1].split("```", 1)[0]
    listed, folders = set(), []
    for line in tree.splitlines():
        name = line.split()[0]
        depth = (len(line) - len(line.lstrip())) // 2 - 1
        if depth > 8:  # a description's continuation line, aligned under the descriptions
            continue
        folders[depth:] = [name.rstrip("/")] if name.endswith("/") else []
        if not name.endswith("/"):
            listed.add("/".join(["container", *folders[:depth], name]))
    actual = {str(p.relative_to(REPO)) for p in CONTAINER.rglob("*") if p.suffix == ".py" or p.name == "pyproject.toml"}
    assert listed == actual
