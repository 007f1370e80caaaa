#!/usr/bin/env bash
# Distributed training in Docker, the way SageMaker runs `instance_count=2`: two containers of the image
# on a user-defined network (internal: nothing outside it is reachable), hostnames algo-1 and algo-2,
# each with its own /opt/ml tree and resourceconfig.json ({"current_host": "algo-N",
# "hosts": ["algo-1", "algo-2"], "network_interface_name": "eth0"}):
#   1. both train (FullyReplicated) and exit 0; algo-1 (rank 0) writes the model, algo-2's model folder
#      stays empty; `serve` on algo-1's model answers /invocations with one row per input row;
#   2. algo-2 killed (docker kill) mid-training: algo-1 exits non-zero with a failure file within the
#      process group's timeout (LSTM_AD_DIST_TIMEOUT=20 here).
# Run by scripts/test_image.sh after the smoke test; alone: IMAGE=lstm-ad:ci-py310 scripts/docker_distributed_test.sh
# The last line is  image=<tag> distributed=ok peer_failure_s=<X>
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-lstm-ad:ci-py310}"
TIMEOUT_S=20
WORK="$(mktemp -d "${TMPDIR:-/tmp}/lstm-ad-dist.XXXXXX")"
NETWORK="lstm-ad-dist-$$"
SERVER="lstm-ad-dist-serve-$$"
CONTAINERS=()

log() { printf '\n== %s\n' "$*"; }
fail() { printf 'DISTRIBUTED TEST FAILED (%s): %s\n' "$IMAGE" "$*" >&2; exit 1; }
cleanup() {
    docker rm -f "${CONTAINERS[@]}" "$SERVER" > /dev/null 2>&1 || true
    docker network rm "$NETWORK" > /dev/null 2>&1 || true
    docker run --rm --network none -v "$WORK:/work" --entrypoint sh "$IMAGE" -c 'rm -rf /work/*' \
        > /dev/null 2>&1 || true
    rm -rf "$WORK" 2> /dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

series() {  # rows seed
    awk -v rows="$1" -v seed="$2" 'BEGIN { srand(seed); for (t = 0; t < rows; t++)
        printf "%.6f,%.6f\n", sin(t / 6.0) + 0.05 * (rand() - 0.5), cos(t / 6.0) + 0.05 * (rand() - 0.5) }'
}
host_folder() {  # folder current-host epochs
    mkdir -p "$1/input/config" "$1/input/data/training" "$1/model" "$1/output"
    printf '{"context-length": "20", "prediction-length": "2", "sequence-stride": "5", "hidden-size": "8",
        "num-layers": "1", "epochs": "%s", "batch-size": "32", "early-stopping-patience": "0"}\n' "$3" \
        > "$1/input/config/hyperparameters.json"
    printf '%s\n' '{"training": {"ContentType": "text/csv", "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}}' > "$1/input/config/inputdataconfig.json"
    printf '{"current_host": "%s", "hosts": ["algo-1", "algo-2"], "network_interface_name": "eth0"}\n' "$2" \
        > "$1/input/config/resourceconfig.json"
    series 600 1 > "$1/input/data/training/a.csv"
    series 500 2 > "$1/input/data/training/b.csv"
}
start_host() {  # run-name host folder
    docker run -d --name "$1" --hostname "$2" --network "$NETWORK" --network-alias "$2" \
        -e LSTM_AD_DIST_TIMEOUT="$TIMEOUT_S" -v "$3:/opt/ml" "$IMAGE" train > /dev/null
    CONTAINERS+=("$1")
}
wait_exit() { docker wait "$1"; }

docker image inspect "$IMAGE" > /dev/null 2>&1 || fail "no image $IMAGE (build it first: scripts/test_image.sh)"
docker network create --internal "$NETWORK" > /dev/null

log "two hosts train together (FullyReplicated)"
for host in algo-1 algo-2; do host_folder "$WORK/ok/$host" "$host" 3; done
start_host "$NETWORK-ok-1" algo-1 "$WORK/ok/algo-1"
start_host "$NETWORK-ok-2" algo-2 "$WORK/ok/algo-2"
status1="$(wait_exit "$NETWORK-ok-1")"
status2="$(wait_exit "$NETWORK-ok-2")"
docker logs "$NETWORK-ok-1" > "$WORK/ok-1.log" 2>&1
docker logs "$NETWORK-ok-2" > "$WORK/ok-2.log" 2>&1
[ "$status1:$status2" = 0:0 ] || { tail -20 "$WORK/ok-1.log" "$WORK/ok-2.log"; fail "exit codes $status1, $status2 (expected 0, 0)"; }
grep -q 'All 2 ranks joined' "$WORK/ok-1.log" || fail "algo-1's log does not show the process group"
[ -s "$WORK/ok/algo-1/model/model.json" ] && [ -s "$WORK/ok/algo-1/model/weights.npz" ] || fail "algo-1 wrote no model"
[ -z "$(ls -A "$WORK/ok/algo-2/model")" ] || fail "algo-2 (rank 1) wrote into its model folder"
grep -q 'train:mse=' "$WORK/ok-1.log" || fail "no final metric line on algo-1"
! grep -q 'train:mse=' "$WORK/ok-2.log" || fail "algo-2 printed metric lines"
echo "algo-1: model.json, weights.npz; algo-2: empty model folder; both exit 0"

log "serve algo-1's model"
series 100 3 > "$WORK/test.csv"
docker run -d --name "$SERVER" --network none -v "$WORK/ok/algo-1/model:/opt/ml/model:ro" \
    -v "$WORK/test.csv:/tmp/test.csv:ro" "$IMAGE" serve > /dev/null
docker exec -i "$SERVER" python3 - <<'PYTHON' || { docker logs "$SERVER" 2>&1 | tail -30; fail "serving failed"; }
import time, urllib.request
deadline = time.time() + 120
while True:
    try:
        urllib.request.urlopen("http://127.0.0.1:8080/ping", timeout=5)
        break
    except OSError:
        if time.time() > deadline:
            raise SystemExit("/ping never answered")
        time.sleep(0.1)
request = urllib.request.Request("http://127.0.0.1:8080/invocations", data=open("/tmp/test.csv", "rb").read(),
                                 headers={"Content-Type": "text/csv"})
lines = urllib.request.urlopen(request, timeout=60).read().decode().splitlines()
assert len(lines) == 100 and all(len(line.split(",")) == 3 for line in lines[20:]), lines[:25]
print(f"serve: 100 rows scored, first scored row {lines[20]}")
PYTHON

log "algo-2 killed mid-training: algo-1 fails with a reason within the timeout ($TIMEOUT_S s)"
for host in algo-1 algo-2; do host_folder "$WORK/kill/$host" "$host" 1000; done
start_host "$NETWORK-kill-1" algo-1 "$WORK/kill/algo-1"
start_host "$NETWORK-kill-2" algo-2 "$WORK/kill/algo-2"
deadline=$((SECONDS + 180))
until docker logs "$NETWORK-kill-1" 2>&1 | grep -q 'epoch 1/1000'; do
    [ "$SECONDS" -lt "$deadline" ] || fail "algo-1 never completed an epoch"
    sleep 0.5
done
docker kill "$NETWORK-kill-2" > /dev/null
killed="$(date +%s.%N)"
status1="$(wait_exit "$NETWORK-kill-1")"
elapsed="$(awk -v a="$killed" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
[ "$status1" != 0 ] || fail "algo-1 exited 0 after its peer was killed"
[ -s "$WORK/kill/algo-1/output/failure" ] || fail "algo-1 left no failure file"
awk -v e="$elapsed" -v t="$TIMEOUT_S" 'BEGIN { exit !(e < t + 15) }' || fail "algo-1 took $elapsed s to fail"
echo "algo-1 exit $status1 after ${elapsed} s: $(head -1 "$WORK/kill/algo-1/output/failure" | cut -c1-160)"
echo "image=$IMAGE distributed=ok peer_failure_s=$elapsed"
