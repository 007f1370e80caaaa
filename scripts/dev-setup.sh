#!/usr/bin/env bash
# Create (or update) the development environment .venv at the repository root:
# the runtime package and the local tools in editable mode with their console scripts (train, serve,
# lstm-ad-local) and the test tools. torch is pinned to the CPU build available on the dev machines;
# the image itself runs torch 2.1 (see Dockerfile).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==${TORCH_VERSION}"
.venv/bin/python -m pip install --quiet -e ".[dev]"
.venv/bin/python -m pip install --quiet --no-deps -e container/lstm_ad_local  # the local tools (not in the image)
.venv/bin/python -c "import torch, numpy, lstm_ad, lstm_ad_local; print(f'.venv ready: torch {torch.__version__}, numpy {numpy.__version__}')"
