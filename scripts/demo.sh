#!/usr/bin/env bash
# The first command on a new machine: set up .venv, generate demo data, then run a
# SageMaker-style training job and batch transform job locally (no Docker, no AWS) with
# the real `train` and `serve` entrypoints, and print what the detector found.
# Everything is written under ./demo (git-ignored); DEMO_DIR=... puts it elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR="${DEMO_DIR:-demo}"
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"

# Show the output of a step only when it fails; the full logs stay in $DEMO_DIR.
fail() { echo "FAILED: $1 (full log: $2). Last lines:" >&2; tail -n 30 "$2" >&2; exit 1; }

echo "== 0/4 Setting up .venv (scripts/dev-setup.sh)"
bash scripts/dev-setup.sh > "$DEMO_DIR/setup.log" 2>&1 || fail "set-up" "$DEMO_DIR/setup.log"
tail -n 1 "$DEMO_DIR/setup.log"

echo "== 1/4 Generating demo data (3 variables, period 50; test series with 3 labelled anomalies)"
.venv/bin/lstm-ad-local demo-data --output "$DEMO_DIR/data"

# Settings for a quick demo on this small, clean data set: a shorter context and a smaller network
# than the defaults, and one-step error vectors, which rank these anomalies best (the defaults were
# chosen on real benchmark series; see the README).
echo "== 2/4 Training job (local, train entrypoint; a few seconds), artifact in $DEMO_DIR/model/model.tar.gz"
.venv/bin/lstm-ad-local train --train "$DEMO_DIR/data/train" --output "$DEMO_DIR/model" \
    --hyperparameters context-length=50 prediction-length=1 hidden-size=16 num-layers=2 epochs=20 lr=0.01 \
                      sequence-stride=5 batch-size=64 early-stopping-patience=5 \
    > "$DEMO_DIR/train.log" 2>&1 || fail "training job" "$DEMO_DIR/train.log"
grep -E "Hyperparameters|epoch (1|5|10|15|20)/|train:|calibration:|completed in" "$DEMO_DIR/train.log"

echo "== 3/4 Batch transform job (local, serve entrypoint; text/csv, each file whole in one request)"
.venv/bin/lstm-ad-local transform --model "$DEMO_DIR/model/model.tar.gz" --input "$DEMO_DIR/data/test" \
    --output "$DEMO_DIR/predictions" > "$DEMO_DIR/transform.log" 2>&1 || fail "transform job" "$DEMO_DIR/transform.log"
grep -E "ready|Transform:|->" "$DEMO_DIR/transform.log"
OUT="$DEMO_DIR/predictions/test.csv.out"

echo "== 4/4 Results: $OUT has one line per input row: score (lower = more anomalous), then one prediction per column"
echo "Rows 49-52 (the first 50 rows are the context-length warm-up: empty fields):"
sed -n '49,52p' "$OUT"
.venv/bin/lstm-ad-local demo-report --out "$OUT" --labels "$DEMO_DIR/data/test_labels.csv"
