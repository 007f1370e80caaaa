#!/usr/bin/env bash
# Run the image locally, the way SageMaker runs it (needs Docker; no AWS account).
#
#   scripts/docker_local.sh train <folder> [hyperparameters.json]   model -> $OUTPUT_DIR/model
#   scripts/docker_local.sh serve <model-dir> [port]  serve that model on 127.0.0.1:<port> (default 8080)
#   scripts/docker_local.sh predict <csv> [port]     POST a CSV to the running server; scores on stdout
#
# <folder> holds either CSV files only (the `training` channel) or `training/` and optional
# `validation/` subfolders of CSV files. hyperparameters.json: {"epochs": "20", ...}.
# Training runs with --network none, as on AWS Marketplace. Environment: IMAGE (default
# lstm-ad:latest), OUTPUT_DIR (default ./lstm-ad-output), GPU=1 adds --gpus all (GPU image).
set -euo pipefail

IMAGE="${IMAGE:-lstm-ad:latest}"

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

gpu_flags() {
    if [ "${GPU:-0}" = "1" ]; then echo "--gpus all"; fi
}

channel_config() {  # the channels present -> inputdataconfig.json
    local first=1
    printf '{'
    for channel in "$@"; do
        [ "$first" = 1 ] || printf ', '
        first=0
        printf '"%s": {"ContentType": "text/csv", "TrainingInputMode": "File", ' "$channel"
        printf '"S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}'
    done
    printf '}\n'
}

train() {
    local folder="${1:?usage: $0 train <folder> [hyperparameters.json]}" hyperparameters="${2:-}"
    local out="${OUTPUT_DIR:-$PWD/lstm-ad-output}"
    [ -d "$folder" ] || { echo "No folder $folder" >&2; exit 2; }
    folder="$(cd "$folder" && pwd)"
    mkdir -p "$out/model" "$out/output"
    out="$(cd "$out" && pwd)"
    local job
    job="$(mktemp -d "${TMPDIR:-/tmp}/lstm-ad-job.XXXXXX")"
    mkdir -p "$job/input/config"
    local mounts=(-v "$job/input/config:/opt/ml/input/config:ro" -v "$out/model:/opt/ml/model"
                  -v "$out/output:/opt/ml/output")
    local channels=()
    if [ -d "$folder/training" ]; then
        for channel in training validation; do
            if [ -d "$folder/$channel" ]; then
                channels+=("$channel")
                mounts+=(-v "$folder/$channel:/opt/ml/input/data/$channel:ro")
            fi
        done
    else
        channels=(training)
        mounts+=(-v "$folder:/opt/ml/input/data/training:ro")
    fi
    if [ -n "$hyperparameters" ]; then
        cp "$hyperparameters" "$job/input/config/hyperparameters.json"
    else
        echo '{}' > "$job/input/config/hyperparameters.json"
    fi
    channel_config "${channels[@]}" > "$job/input/config/inputdataconfig.json"
    echo '{"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}' \
        > "$job/input/config/resourceconfig.json"
    echo "Training on channel(s) ${channels[*]} from $folder with $IMAGE" >&2
    local status=0
    # shellcheck disable=SC2046  # gpu_flags expands to zero or two words
    docker run --rm --network none $(gpu_flags) "${mounts[@]}" "$IMAGE" train || status=$?
    rm -rf "$job"
    if [ "$status" != 0 ]; then
        echo "Training failed (exit $status):" >&2
        cat "$out/output/failure" >&2 2>/dev/null || true
        exit "$status"
    fi
    echo "Model written to $out/model" >&2
}

serve() {
    local model="${1:?usage: $0 serve <model-dir> [port]}" port="${2:-8080}"
    [ -f "$model/model.json" ] || { echo "$model has no model.json: train first" >&2; exit 2; }
    model="$(cd "$model" && pwd)"
    echo "Serving $model on http://127.0.0.1:$port (Ctrl-C stops)" >&2
    # shellcheck disable=SC2046
    exec docker run --rm $(gpu_flags) -p "127.0.0.1:$port:8080" -v "$model:/opt/ml/model:ro" "$IMAGE" serve
}

predict() {
    local csv="${1:?usage: $0 predict <csv> [port]}" port="${2:-8080}"
    [ -f "$csv" ] || { echo "No file $csv" >&2; exit 2; }
    curl --fail-with-body --silent --show-error -X POST -H "Content-Type: text/csv" -H "Accept: text/csv" \
        --data-binary "@$csv" "http://127.0.0.1:$port/invocations"
}

command="${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
    train) train "$@" ;;
    serve) serve "$@" ;;
    predict) predict "$@" ;;
    *) usage ;;
esac
