#!/usr/bin/env bash
# The first command on a new machine: set up .venv, generate demo data, then run a
# SageMaker-style training job and batch transform job locally (no Docker, no AWS) with
# the real `train` and `serve` entrypoints, and print what the detector found.
# Everything is written under ./demo (git-ignored); DEMO_DIR=... puts it elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR="${DEMO_DIR:-demo}"

bash scripts/dev-setup.sh
rm -rf "$DEMO_DIR"

echo "== 1/4 Generating demo data (3 variables, period 50; test series with 3 labelled anomalies)"
.venv/bin/lstm-ad-local demo-data --output "$DEMO_DIR/data"

echo "== 2/4 Training job (local, train entrypoint): log below, artifact in $DEMO_DIR/model/model.tar.gz"
.venv/bin/lstm-ad-local train --train "$DEMO_DIR/data/train" --output "$DEMO_DIR/model" \
    --hyperparameters context-length=50 hidden-size=16 num-layers=2 epochs=20 lr=0.01 \
                      sequence-stride=5 batch-size=64 early-stopping-patience=5 \
    | grep -E "Hyperparameters|train:|calibration:|epoch [0-9]+/|Model artifact"

echo "== 3/4 Batch transform job (local, serve entrypoint; text/csv, whole file per request)"
if ! .venv/bin/lstm-ad-local transform --model "$DEMO_DIR/model/model.tar.gz" --input "$DEMO_DIR/data/test" \
        --output "$DEMO_DIR/predictions" 2> "$DEMO_DIR/transform.log"; then
    cat "$DEMO_DIR/transform.log" >&2
    exit 1
fi
grep -E "ready|Transform:|->" "$DEMO_DIR/transform.log"
OUT="$DEMO_DIR/predictions/test.csv.out"

echo "== 4/4 Results: $OUT holds one line per input row: score (log-likelihood), then one prediction per column"
echo "Rows 49-52 (the first 50 rows are the context-length warm-up: empty fields):"
sed -n '49,52p' "$OUT"
.venv/bin/lstm-ad-local demo-report --out "$OUT" --labels "$DEMO_DIR/data/test_labels.csv"
