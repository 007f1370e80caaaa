#!/usr/bin/env bash
# The image runs Python 3.10 with numpy<2; development runs Python 3.11 with numpy 2. This runs the
# tests of the torch-free modules (schema, CSV reading, Gaussian, CSV output) under Python 3.10 with
# numpy<2, in .venv-py310. (torch 2.1 itself is only exercised in the image: its PyPI wheels are
# multi-GB CUDA builds.) Skips, saying so, when no Python 3.10 is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
# A Python 3.10: pyenv's when there is one (its shim needs PYENV_VERSION), else one on PATH.
VERSION="$(pyenv versions --bare 2>/dev/null | grep -m1 '^3\.10\.' || true)"
if [ -n "$VERSION" ]; then
    PY310="$(pyenv root)/versions/$VERSION/bin/python3.10"
else
    PY310="$(command -v python3.10 || true)"
fi
if [ -z "$PY310" ] || ! "$PY310" --version >/dev/null 2>&1; then
    echo "test_compat: SKIPPED (no Python 3.10 on this machine)"
    exit 0
fi
if [ ! -x .venv-py310/bin/python ]; then
    "$PY310" -m venv .venv-py310
fi
.venv-py310/bin/python -m pip install --quiet "numpy<2" "pandas>=1.5,<2.3" "scipy>=1.9" pytest
.venv-py310/bin/python -c "import sys, numpy; print(f'compat: Python {sys.version.split()[0]}, numpy {numpy.__version__}')"
PYTHONPATH=container .venv-py310/bin/python -m pytest -q -p no:cacheprovider \
    tests/test_config.py tests/test_data.py tests/test_gaussian.py tests/test_csv_format.py
