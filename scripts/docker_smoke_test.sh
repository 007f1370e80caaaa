#!/usr/bin/env bash
# Smoke test of the Docker image, the way SageMaker runs it, with no network at all:
#   1. build the image (skip with SKIP_BUILD=1 to test an image you already have);
#   2. `docker run IMAGE` (no argument = train) on generated CSV data in a fake /opt/ml,
#      checking the model files, the metric lines and the absence of a failure file;
#   3. a bad hyperparameter: non-zero exit and /opt/ml/output/failure naming it;
#   4. `docker run IMAGE serve` on the trained model: /ping, /invocations (CSV and JSON),
#      one output row per input row with empty warm-up rows, 400 on a header row.
# Every container runs with --network none, as AWS Marketplace runs it.
#
# Usage: scripts/docker_smoke_test.sh            (IMAGE=lstm-ad:smoke by default)
#        IMAGE=lstm-ad:gpu SKIP_BUILD=1 scripts/docker_smoke_test.sh
#        BUILD_ARGS="--build-arg BASE_TAG=2.1.0-gpu-py310-cu121-ubuntu20.04-sagemaker" scripts/docker_smoke_test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-lstm-ad:smoke}"
CONTEXT_LENGTH=20
TEST_ROWS=100
WORK="$(mktemp -d "${TMPDIR:-/tmp}/lstm-ad-smoke.XXXXXX")"
SERVER="lstm-ad-smoke-$$"

log() { printf '\n== %s\n' "$*"; }
fail() { printf 'SMOKE TEST FAILED: %s\n' "$*" >&2; exit 1; }

cleanup() {
    docker rm -f "$SERVER" >/dev/null 2>&1 || true
    # Files written by the container belong to root: remove them from inside one.
    docker run --rm --network none -v "$WORK:/work" --entrypoint sh "$IMAGE" -c 'rm -rf /work/*' \
        >/dev/null 2>&1 || true
    rm -rf "$WORK" 2>/dev/null || true
}
trap cleanup EXIT

# A noisy two-column periodic series; no Python or numpy needed on the host.
series() {  # rows seed
    awk -v rows="$1" -v seed="$2" 'BEGIN { srand(seed); for (t = 0; t < rows; t++)
        printf "%.6f,%.6f\n", sin(t / 6.0) + 0.05 * (rand() - 0.5), cos(t / 6.0) + 0.05 * (rand() - 0.5) }'
}

# A fake /opt/ml: config files as SageMaker writes them (hyperparameter values are strings).
opt_ml() {  # folder hyperparameters-json
    mkdir -p "$1/input/config" "$1/input/data/training" "$1/input/data/validation" "$1/model" "$1/output"
    printf '%s\n' "$2" > "$1/input/config/hyperparameters.json"
    printf '%s\n' '{"training": {"ContentType": "text/csv", "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"},
        "validation": {"ContentType": "text/csv", "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}}' \
        > "$1/input/config/inputdataconfig.json"
    printf '%s\n' '{"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}' \
        > "$1/input/config/resourceconfig.json"
    series 600 1 > "$1/input/data/training/train.csv"
    series 200 2 > "$1/input/data/validation/valid.csv"
}

if [ "${SKIP_BUILD:-0}" != "1" ]; then
    log "building $IMAGE"
    # shellcheck disable=SC2086  # BUILD_ARGS is a list of words on purpose
    DOCKER_BUILDKIT=1 docker build ${BUILD_ARGS:-} -t "$IMAGE" .
fi

log "train (no argument: the default command), --network none"
TINY='{"context-length": "20", "prediction-length": "2", "sequence-stride": "5", "hidden-size": "8",
       "num-layers": "1", "epochs": "2", "batch-size": "32"}'
opt_ml "$WORK/good" "$TINY"
docker run --rm --network none -v "$WORK/good:/opt/ml" "$IMAGE" 2>&1 | tee "$WORK/train.log" \
    || fail "training exited non-zero (log above)"
for file in model.json weights.npz; do
    [ -s "$WORK/good/model/$file" ] || fail "the model folder has no $file"
done
[ ! -e "$WORK/good/output/failure" ] || fail "a successful job left a failure file"
for metric in 'train_mse=' 'train:mse=' 'valid:mse=' 'valid:mae='; do
    grep -q "$metric" "$WORK/train.log" || fail "no '$metric' metric line in the training log"
done
! grep -qi 'sagemaker-training-toolkit\|SAGEMAKER_PROGRAM' "$WORK/train.log" \
    || fail "the base image's training toolkit ran instead of lstm_ad"

log "train with a bad hyperparameter: non-zero exit and a failure file"
opt_ml "$WORK/bad" '{"hidden-size": "0"}'
if docker run --rm --network none -v "$WORK/bad:/opt/ml" "$IMAGE" train > "$WORK/bad.log" 2>&1; then
    fail "training with hidden-size 0 succeeded"
fi
grep -q 'hidden-size' "$WORK/bad/output/failure" || fail "the failure file does not name hidden-size"
[ ! -e "$WORK/bad/model/weights.npz" ] || fail "a failed job left model weights"

log "an unknown command exits 2"
status=0
docker run --rm --network none "$IMAGE" bogus > /dev/null 2>&1 || status=$?
[ "$status" = 2 ] || fail "'docker run IMAGE bogus' exited $status, expected 2"

log "serve the trained model, --network none (requests come from inside the container)"
series "$TEST_ROWS" 3 > "$WORK/test.csv"
docker run -d --name "$SERVER" --network none -v "$WORK/good/model:/opt/ml/model:ro" \
    -v "$WORK/test.csv:/tmp/test.csv:ro" "$IMAGE" serve > /dev/null
docker exec -i "$SERVER" python - "$CONTEXT_LENGTH" "$TEST_ROWS" > "$WORK/serve.txt" 2>&1 <<'PYTHON' \
    || { docker logs "$SERVER" 2>&1 | tail -50; cat "$WORK/serve.txt"; fail "serving checks failed"; }
import json, sys, time, urllib.error, urllib.request

context, rows = int(sys.argv[1]), int(sys.argv[2])
base = "http://127.0.0.1:8080"

def call(path, body=None, content_type="text/csv", accept="text/csv"):
    request = urllib.request.Request(base + path, data=body, headers={"Content-Type": content_type, "Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()

for _ in range(120):  # gunicorn and the model load: allow a minute
    try:
        if call("/ping")[0] == 200:
            break
    except OSError:
        pass
    time.sleep(0.5)
else:
    sys.exit("/ping never answered 200")

body = open("/tmp/test.csv", "rb").read()
status, text = call("/invocations", body)
assert status == 200, (status, text[:500])
lines = text.splitlines()
assert len(lines) == rows, f"{len(lines)} output rows for {rows} input rows"
assert all(line == ",," for line in lines[:context]), lines[:context]
for line in lines[context:]:
    fields = [float(value) for value in line.split(",")]
    assert len(fields) == 3, line
print(f"CSV: {len(lines)} rows, first scored row: {lines[context]}")

status, text = call("/invocations", body, accept="application/json")
assert status == 200, (status, text[:500])
json.loads(text)
print("JSON: 200")

status, text = call("/invocations", b"a,b\n" + body)
assert status == 400, (status, text[:500])
print(f"header row: 400 {text.strip()[:200]}")
PYTHON
cat "$WORK/serve.txt"
docker stop -t 30 "$SERVER" > /dev/null

log "smoke test passed: $IMAGE"
