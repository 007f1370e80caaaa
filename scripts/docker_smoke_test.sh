#!/usr/bin/env bash
# Smoke test of the Docker image, the way SageMaker runs it, with no network at all:
#   1. build the image (skip with SKIP_BUILD=1 to test an image you already have);
#   2. what is in the image: torch and numpy work together, root user, no files under /opt/ml, the
#      bind-to-port label, OpenMP's wait policy defaults to PASSIVE (and `-e` overrides it), the local
#      tools (lstm_ad_local) are not installed;
#   3. `docker run IMAGE` (no argument = train) on generated CSV data in a fake /opt/ml,
#      checking the model files, the metric lines and the absence of a failure file;
#   4. a bad hyperparameter: exit 2 and /opt/ml/output/failure naming it; a GPU device file that torch
#      cannot use (a file mounted at /dev/nvidia0): exit 2 and a failure file saying so; an unknown
#      command: exit 2;
#   5. SIGTERM (docker stop) during training: the model learnt so far is saved, exit 0;
#   6. `docker run IMAGE serve` on the trained model: cold start (docker run to the first 200 on
#      /ping), /execution-parameters, /invocations in CSV and JSON (one output row per input row,
#      empty warm-up rows), 400 for a header row, 415 for an unsupported Content-Type;
#   7. SIGTERM (docker stop) to serve: exit 0 within the grace period.
# Every container runs with --network none, as AWS Marketplace runs it. The last line is
#   image=<tag> size_mb=<N> cold_start_s=<X> smoke=ok
#
# Usage: scripts/docker_smoke_test.sh            (IMAGE=lstm-ad:smoke by default)
#        IMAGE=lstm-ad:gpu SKIP_BUILD=1 scripts/docker_smoke_test.sh
#        BUILD_ARGS="--build-arg BASE_IMAGE=lstm-ad-base/pytorch-2.1-py310:standin" scripts/docker_smoke_test.sh
# The build uses the classic builder (DOCKER_BUILDKIT=0) unless DOCKER_BUILDKIT is set: the Dockerfile
# needs nothing of BuildKit, and some Docker installations have no buildx.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-lstm-ad:smoke}"
CONTEXT_LENGTH=20
TEST_ROWS=100
WEIGHTS=weights.npz  # the model artifact's weights file, beside model.json
GRACE_S=30  # SageMaker sends SIGKILL 30 s after SIGTERM when it stops an endpoint
WORK="$(mktemp -d "${TMPDIR:-/tmp}/lstm-ad-smoke.XXXXXX")"
SERVER="lstm-ad-smoke-serve-$$"
TRAINER="lstm-ad-smoke-train-$$"

log() { printf '\n== %s\n' "$*"; }
fail() { printf 'SMOKE TEST FAILED (%s): %s\n' "$IMAGE" "$*" >&2; exit 1; }

cleanup() {
    docker rm -f "$SERVER" "$TRAINER" >/dev/null 2>&1 || true
    # Files written by the container belong to root: remove them from inside one.
    docker run --rm --network none -v "$WORK:/work" --entrypoint sh "$IMAGE" -c 'rm -rf /work/*' \
        >/dev/null 2>&1 || true
    rm -rf "$WORK" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT  # a signal becomes an exit, so the EXIT trap removes the containers
trap 'exit 143' TERM

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

exit_code() { docker inspect -f '{{.State.ExitCode}}' "$1"; }

if [ "${SKIP_BUILD:-0}" != "1" ]; then
    log "building $IMAGE"
    # shellcheck disable=SC2086  # BUILD_ARGS is a list of words on purpose
    DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}" docker build ${BUILD_ARGS:-} -t "$IMAGE" .
fi
docker image inspect "$IMAGE" > /dev/null 2>&1 || fail "no image $IMAGE (build it, or unset SKIP_BUILD)"

log "what is in the image"
docker run --rm --network none --entrypoint python3 "$IMAGE" -c \
    "import numpy, torch, sys; torch.zeros(1).numpy(); print('python', sys.version.split()[0], 'torch', torch.__version__, 'numpy', numpy.__version__)" \
    || fail "torch and numpy do not work together in the image"
# The SageMaker container contract: root (SageMaker expects it), no files under /opt/ml (mounted over at
# run time; AWS's PyTorch 2.13 images have its empty folders, which do no harm), the bind-to-port
# capability declared, port 8080 exposed.
[ "$(docker run --rm --network none --entrypoint id "$IMAGE" -u)" = 0 ] || fail "the image does not run as root"
docker run --rm --network none --entrypoint sh "$IMAGE" -c 'test -z "$(find /opt/ml ! -type d 2> /dev/null)"' \
    || fail "the image ships files under /opt/ml, which SageMaker mounts over"
label="$(docker image inspect -f '{{index .Config.Labels "com.amazonaws.sagemaker.capabilities.accept-bind-to-port"}}' "$IMAGE")"
[ "$label" = true ] || fail "the image lacks the label com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true"
docker image inspect -f '{{json .Config.ExposedPorts}}' "$IMAGE" | grep -q '"8080/tcp"' || fail "port 8080 is not exposed"
policy="$(docker run --rm --network none --entrypoint sh "$IMAGE" -c 'echo "$OMP_WAIT_POLICY"')"
[ "$policy" = PASSIVE ] || fail "OMP_WAIT_POLICY is '$policy' in the image, expected the default PASSIVE"
policy="$(docker run --rm --network none -e OMP_WAIT_POLICY=ACTIVE --entrypoint sh "$IMAGE" -c 'echo "$OMP_WAIT_POLICY"')"
[ "$policy" = ACTIVE ] || fail "docker run -e OMP_WAIT_POLICY=ACTIVE did not override the image's default"
# The local tools (lstm-ad-local) are a separate distribution for developers' machines only.
if docker run --rm --network none --entrypoint python3 "$IMAGE" -c "import lstm_ad_local" > "$WORK/local.log" 2>&1; then
    fail "the local tools (lstm_ad_local) are installed in the image"
fi
grep -q "No module named 'lstm_ad_local'" "$WORK/local.log" || { cat "$WORK/local.log"; fail "import lstm_ad_local failed oddly"; }
! docker run --rm --network none --entrypoint sh "$IMAGE" -c 'command -v lstm-ad-local' \
    || fail "the lstm-ad-local command is on PATH in the image"
echo "lstm_ad_local: not in the image (as intended)"

log "train (no argument: the default command), --network none"
TINY='{"context-length": "20", "prediction-length": "2", "sequence-stride": "5", "hidden-size": "8",
       "num-layers": "1", "epochs": "2", "batch-size": "32"}'
opt_ml "$WORK/good" "$TINY"
docker run --rm --network none -v "$WORK/good:/opt/ml" "$IMAGE" > "$WORK/train.log" 2>&1 \
    || { cat "$WORK/train.log"; fail "training exited non-zero (log above)"; }
tail -5 "$WORK/train.log"
for file in model.json "$WEIGHTS"; do
    [ -s "$WORK/good/model/$file" ] || fail "the model folder has no $file"
done
[ ! -e "$WORK/good/output/failure" ] || fail "a successful job left a failure file"
for metric in 'train_mse=' 'train_mae=' 'valid_mse=' 'train:mse=' 'train:mae=' 'valid:mse=' 'valid:mae='; do
    grep -q "$metric" "$WORK/train.log" || fail "no '$metric' metric line in the training log"
done
! grep -qi 'sagemaker-training-toolkit\|SAGEMAKER_PROGRAM' "$WORK/train.log" \
    || fail "the base image's training toolkit ran instead of lstm_ad"

log "train with a bad hyperparameter: exit 2 and a failure file"
opt_ml "$WORK/bad" '{"hidden-size": "0"}'
status=0
docker run --rm --network none -v "$WORK/bad:/opt/ml" "$IMAGE" train > "$WORK/bad.log" 2>&1 || status=$?
[ "$status" = 2 ] || { cat "$WORK/bad.log"; fail "training with hidden-size 0 exited $status, expected 2"; }
grep -q 'hidden-size' "$WORK/bad/output/failure" || fail "the failure file does not name hidden-size"
echo "failure file: $(head -c 200 "$WORK/bad/output/failure")"
[ ! -e "$WORK/bad/model/$WEIGHTS" ] || fail "a failed job left model weights"

log "train on a GPU host whose GPU torch cannot use (a file at /dev/nvidia0): exit 2 and a failure file"
opt_ml "$WORK/gpu" "$TINY"
: > "$WORK/nvidia0"
status=0
docker run --rm --network none -v "$WORK/gpu:/opt/ml" -v "$WORK/nvidia0:/dev/nvidia0" "$IMAGE" train \
    > "$WORK/gpu.log" 2>&1 || status=$?
[ "$status" = 2 ] || { cat "$WORK/gpu.log"; fail "training beside an unusable /dev/nvidia0 exited $status, expected 2"; }
grep -q 'This host has 1 NVIDIA GPU (/dev/nvidia\*), but torch .* cannot use it' "$WORK/gpu/output/failure" \
    || { cat "$WORK/gpu/output/failure"; fail "the failure file does not say that torch cannot use the GPU"; }
echo "failure file: $(head -c 200 "$WORK/gpu/output/failure")"
[ ! -e "$WORK/gpu/model/$WEIGHTS" ] || fail "a job that refused the host left model weights"

log "an unknown command exits 2"
status=0
docker run --rm --network none "$IMAGE" bogus > /dev/null 2>&1 || status=$?
[ "$status" = 2 ] || fail "'docker run IMAGE bogus' exited $status, expected 2"

log "SIGTERM during training (docker stop): the model so far is saved, exit 0"
opt_ml "$WORK/stop" '{"context-length": "20", "prediction-length": "2", "sequence-stride": "5", "hidden-size": "8",
       "num-layers": "1", "epochs": "100000", "early-stopping-patience": "0", "batch-size": "32"}'
docker run -d --name "$TRAINER" --network none -v "$WORK/stop:/opt/ml" "$IMAGE" train > /dev/null
# (The log goes to a file before grep reads it: `docker logs | grep -q` fails under pipefail when
# grep stops reading early.)
for _ in $(seq 1 240); do  # until the first epoch's metric line: something to save
    docker logs "$TRAINER" > "$WORK/stop.log" 2>&1
    grep -q 'train_mse=' "$WORK/stop.log" && break
    [ "$(docker inspect -f '{{.State.Running}}' "$TRAINER")" = true ] || break
    sleep 0.5
done
grep -q 'train_mse=' "$WORK/stop.log" || { cat "$WORK/stop.log"; fail "no epoch finished within 2 minutes"; }
docker stop -t 60 "$TRAINER" > /dev/null
docker logs "$TRAINER" > "$WORK/stop.log" 2>&1
status="$(exit_code "$TRAINER")"
docker rm "$TRAINER" > /dev/null
[ "$status" = 0 ] || { tail -20 "$WORK/stop.log"; fail "train stopped by SIGTERM exited $status, expected 0"; }
[ -s "$WORK/stop/model/$WEIGHTS" ] || fail "train stopped by SIGTERM saved no weights"
grep -q 'interrupted by SIGTERM' "$WORK/stop.log" || fail "the log does not say training was interrupted"
grep 'interrupted by SIGTERM' "$WORK/stop.log"

log "serve the trained model, --network none (requests come from inside the container)"
series "$TEST_ROWS" 3 > "$WORK/test.csv"
# Cold start: from `docker run` to the first 200 on /ping, timed on the same clock (the host's; the
# container shares its kernel). The poller runs inside the container: with --network none the port
# cannot be reached from outside.
started="$(date +%s.%N)"
docker run -d --name "$SERVER" --network none -v "$WORK/good/model:/opt/ml/model:ro" \
    -v "$WORK/test.csv:/tmp/test.csv:ro" "$IMAGE" serve > /dev/null
docker exec -i "$SERVER" python3 - "$CONTEXT_LENGTH" "$TEST_ROWS" > "$WORK/serve.txt" 2>&1 <<'PYTHON' \
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

deadline = time.time() + 120  # gunicorn, the model load and the first forward pass
while time.time() < deadline:
    try:
        if call("/ping")[0] == 200:
            break
    except OSError:
        pass
    time.sleep(0.05)
else:
    sys.exit("/ping never answered 200 within 120 s")
print(f"ping_ok_at={time.time():.3f}")

status, text = call("/execution-parameters")
assert status == 200, (status, text[:500])
parameters = json.loads(text)
assert parameters["MaxConcurrentTransforms"] >= 1 and 1 <= parameters["MaxPayloadInMB"] <= 100, parameters
print(f"execution-parameters: {parameters}")

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

status, text = call("/invocations", body, content_type="application/x-npy")
assert status == 415, (status, text[:500])
print(f"wrong content type: 415 {text.strip()[:200]}")
PYTHON
cat "$WORK/serve.txt"
ping_ok="$(sed -n 's/^ping_ok_at=//p' "$WORK/serve.txt")"
cold_start="$(awk -v a="$started" -v b="$ping_ok" 'BEGIN { printf "%.1f", b - a }')"

log "SIGTERM to serve (docker stop -t $GRACE_S): exit 0 within the grace period"
stop_started="$(date +%s.%N)"
docker stop -t "$GRACE_S" "$SERVER" > /dev/null
stop_s="$(awk -v a="$stop_started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
status="$(exit_code "$SERVER")"
[ "$status" = 0 ] || { docker logs "$SERVER" 2>&1 | tail -20; fail "serve stopped by SIGTERM exited $status, expected 0"; }
awk -v s="$stop_s" -v g="$GRACE_S" 'BEGIN { exit !(s < g) }' \
    || fail "serve took ${stop_s} s to stop (the grace period is ${GRACE_S} s)"
echo "serve stopped in ${stop_s} s, exit 0"

size_mb=$(( $(docker image inspect -f '{{.Size}}' "$IMAGE") / 1000000 ))
log "smoke test passed: $IMAGE"
echo "image=$IMAGE size_mb=$size_mb cold_start_s=$cold_start smoke=ok"
