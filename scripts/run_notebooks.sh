#!/usr/bin/env bash
# Regenerate what the repository stores as generated output, by running it:
#   notebooks/lstm_ad.ipynb         executed top to bottom in local mode (full settings) in .venv (SDK v2)
#   notebooks/lstm_ad_sdk_v3.ipynb  the same in the SDK v3 environment (scripts/sdk_v3_venv.sh)
#   docs/demo.png                   the README's picture: scripts/demo.sh in a scratch folder, then
#                                   scripts/demo_figure.py
# The notebooks are stored with their outputs and plots and a stamp (metadata "lstm_ad": the date, the
# SDK and the SHA-256 of their code) that tests/test_notebook.py checks against the code, so an edited cell
# fails the tests until this script has run again. CI executes both notebooks too (quick settings, without
# storing them): tests/test_notebook.py and tests/sdk_v3. About 3 minutes on a 2-core machine with the
# environments already made.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

echo "== the demo and its picture (docs/demo.png)"
DEMO_DIR="$scratch/demo" bash scripts/demo.sh > "$scratch/demo.log" 2>&1 \
    || { tail -30 "$scratch/demo.log"; echo "scripts/demo.sh failed" >&2; exit 1; }
.venv/bin/python scripts/demo_figure.py --demo-dir "$scratch/demo" --output docs/demo.png

echo "== notebooks/lstm_ad.ipynb (SDK v2, .venv)"
PATH="$PWD/.venv/bin:$PATH" .venv/bin/python scripts/run_notebook.py run notebooks/lstm_ad.ipynb

echo "== notebooks/lstm_ad_sdk_v3.ipynb (SDK v3)"
venv="$(bash scripts/sdk_v3_venv.sh)"
PATH="$venv/bin:$PATH" "$venv/bin/python" scripts/run_notebook.py run notebooks/lstm_ad_sdk_v3.ipynb
