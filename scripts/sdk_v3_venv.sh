#!/usr/bin/env bash
# Make (or bring up to date) the SageMaker Python SDK v3 environment and print its path: SDK v3 cannot share
# .venv with SDK v2, which the v2 notebook and the [dev] extra pin (sagemaker<3). It lives outside the clone,
# in ${LSTM_AD_CACHE:-/var/cache/lstm-ad}/venv-sdk-v3, so that later runs on the same machine (CI clones
# afresh each time) reuse it; it is reinstalled only when what it is made from changes (the pins below, the
# two pyproject.toml files, the clone's path). Used by scripts/test_sdk_v3.sh and scripts/run_notebooks.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${LSTM_AD_CACHE:-/var/cache/lstm-ad}"
VENV="$CACHE/venv-sdk-v3"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"  # the CPU build on the dev machines' disk (no CUDA download)
# The SDK pinned exactly (the notebook's install cell asks for >=3.27,<4); the notebook and test tools.
REQUIREMENTS=("sagemaker==3.27.0" "torch==$TORCH_VERSION" pytest pytest-timeout nbclient nbformat ipykernel matplotlib pandas)
STAMP="$VENV/.lstm-ad-inputs"

inputs() {
    printf '%s\n' "$PWD" "${REQUIREMENTS[@]}"
    cat pyproject.toml container/lstm_ad_local/pyproject.toml
}
WANT="$(inputs | sha256sum | cut -d' ' -f1)"

mkdir -p "$CACHE"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV" >&2
fi
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip "setuptools>=77" wheel >&2
    "$VENV/bin/python" -m pip install --quiet "torch==$TORCH_VERSION" >&2  # first, so nothing pulls another build
    # The runtime package editable with its own dependencies, never its [dev] extra (sagemaker<3).
    "$VENV/bin/python" -m pip install --quiet -e . "${REQUIREMENTS[@]}" >&2
    "$VENV/bin/python" -m pip install --quiet --no-deps -e container/lstm_ad_local >&2
    echo "$WANT" > "$STAMP"
fi
"$VENV/bin/python" -c "import sys; from importlib.metadata import version; import lstm_ad, lstm_ad_local, torch; \
print(f'sdk-v3: Python {sys.version.split()[0]}, sagemaker {version(\"sagemaker\")}, torch {torch.__version__}')" >&2
echo "$VENV"
