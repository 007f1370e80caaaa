#!/usr/bin/env bash
# The SageMaker Python SDK v3 tests (tests/sdk_v3: the v3 notebook run in local mode, and the requests
# the real v3 SDK sends to stubbed clients) in their own virtual environment: SDK v3 cannot share .venv
# with SDK v2, which the v2 notebook and the [dev] extra pin (sagemaker<3). The environment lives outside
# the clone, in ${LSTM_AD_CACHE:-/var/cache/lstm-ad}/venv-sdk-v3, so that later runs on the same machine
# (CI clones afresh each time) reuse it; it is reinstalled only when what it is made from changes (the
# pins below, the two pyproject.toml files, the clone's path). Arguments go to pytest.
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
    "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip "setuptools>=77" wheel
    "$VENV/bin/python" -m pip install --quiet "torch==$TORCH_VERSION"  # first, so nothing pulls another build
    # The runtime package editable with its own dependencies, never its [dev] extra (sagemaker<3).
    "$VENV/bin/python" -m pip install --quiet -e . "${REQUIREMENTS[@]}"
    "$VENV/bin/python" -m pip install --quiet --no-deps -e container/lstm_ad_local
    echo "$WANT" > "$STAMP"
fi
"$VENV/bin/python" -c "import sys; from importlib.metadata import version; import lstm_ad, lstm_ad_local, torch; \
print(f'sdk-v3: Python {sys.version.split()[0]}, sagemaker {version(\"sagemaker\")}, torch {torch.__version__}')"
# The notebook's local runner starts `train`/`serve` beside the interpreter: run from the venv.
# `-W default`: pyproject.toml turns every warning into an error for the main suite, whose dependencies are
# pinned with it; SDK v3 and what it pulls in warn on their own schedule, so here warnings are shown, not fatal.
PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pytest -q -ra -p no:cacheprovider -W default tests/sdk_v3 "$@"
