#!/usr/bin/env bash
# AWS mode of both notebooks needs only what their `%pip install` cell installs (the SageMaker SDK, pandas,
# matplotlib): no lstm_ad, lstm_ad_local or torch, which a Marketplace buyer does not have. For each
# notebook, an environment with exactly those requirements (kept in ${LSTM_AD_CACHE:-/var/cache/lstm-ad}/
# venv-notebook-<name>, remade when the requirements change), then scripts/run_notebook.py aws-check:
# every import of AWS mode, and AWS mode's cells up to the first AWS call.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${LSTM_AD_CACHE:-/var/cache/lstm-ad}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$CACHE"
for notebook in notebooks/lstm_ad.ipynb notebooks/lstm_ad_sdk_v3.ipynb; do
    venv="$CACHE/venv-notebook-$(basename "$notebook" .ipynb)"
    mapfile -t requirements < <("$PYTHON" scripts/run_notebook.py requirements "$notebook")
    want="$(printf '%s\n' "${requirements[@]}" | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$venv/.lstm-ad-inputs" 2> /dev/null || true)" != "$want" ]; then
        rm -rf "$venv"
        "$PYTHON" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --upgrade pip
        "$venv/bin/python" -m pip install --quiet "${requirements[@]}"
        echo "$want" > "$venv/.lstm-ad-inputs"
    fi
    for missing in lstm_ad lstm_ad_local torch; do  # the point of the exercise
        if "$venv/bin/python" -c "import $missing" 2> /dev/null; then
            echo "test_notebooks_aws: $missing is importable in $venv" >&2
            exit 1
        fi
    done
    echo "$notebook: in an environment with only ${requirements[*]}"
    SAGEMAKER_SUPPRESS_V2_WARNING=1 "$venv/bin/python" scripts/run_notebook.py aws-check "$notebook"
done
