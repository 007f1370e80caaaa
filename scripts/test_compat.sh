#!/usr/bin/env bash
# The whole test suite on the image's stack: Python 3.10, torch 2.1.0, numpy<2 (development runs
# Python 3.11, torch 2.13 and numpy 2). The environment lives outside the clone, in
# ${LSTM_AD_CACHE:-/var/cache/lstm-ad}/venv-py310-torch21, so that later runs on the same machine
# (CI clones afresh each time) reuse it; PyPI's torch 2.1.0 is a CUDA build of about 3 GB that runs
# on CPU. Arguments go to pytest. Fails when no Python 3.10 can be found.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${LSTM_AD_CACHE:-/var/cache/lstm-ad}"
VENV="$CACHE/venv-py310-torch21"

# A Python 3.10: pyenv's when there is one, else one on PATH.
VERSION="$(pyenv versions --bare 2>/dev/null | grep -m1 '^3\.10\.' || true)"
if [ -n "$VERSION" ]; then
    PY310="$(pyenv root)/versions/$VERSION/bin/python3.10"
else
    PY310="$(command -v python3.10 || true)"
fi
if [ -z "$PY310" ] || ! "$PY310" --version >/dev/null 2>&1; then
    echo "test_compat: no Python 3.10 on this machine (install one, e.g. with pyenv)" >&2
    exit 1
fi
mkdir -p "$CACHE"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY310" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip "setuptools>=77" wheel
# torch first and pinned; numpy<2 as in the image (torch 2.1 cannot use numpy 2).
"$VENV/bin/python" -m pip install --quiet "torch==2.1.0" "numpy<2"
"$VENV/bin/python" -m pip install --quiet -e ".[dev]" "torch==2.1.0" "numpy<2"
"$VENV/bin/python" -m pip install --quiet --no-deps -e container/lstm_ad_local
"$VENV/bin/python" -c "import sys, numpy, torch; torch.zeros(1).numpy(); \
print(f'compat: Python {sys.version.split()[0]}, torch {torch.__version__}, numpy {numpy.__version__}')"
# The suite starts `train`/`serve` beside the interpreter and builds wheels with it: run it from the venv.
PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pytest -q -ra -p no:cacheprovider "$@"
