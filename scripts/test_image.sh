#!/usr/bin/env bash
# Build the product images from the real Dockerfile and test them the way SageMaker runs them.
# CI runs it after the Python tests (.ci/run); it needs root on a Debian-like machine or a Docker
# engine that answers. On a fresh machine it takes about 10 minutes, most of it making the bases.
#
#   1. a Docker engine: the one that answers, else Debian's docker.io started here (and stopped at
#      the end: scripts/docker_engine.sh);
#   2. the local base images, made when missing (scripts/make_base_images.sh; kept between runs);
#   3. three builds of the Dockerfile, only BASE_IMAGE (and, for slim, NUMPY_REQUIREMENT) changed:
#        lstm-ad:ci-py310   the default, listing-compatible image (PyTorch 2.1 / Python 3.10 stand-in)
#        lstm-ad:ci-dlc213  on a stand-in of AWS's patched PyTorch 2.13 image (venv at /opt/venv, numpy 2.4,
#                           the toolkit's `train` on PATH, /opt/ml folders, an ENTRYPOINT of its own)
#        lstm-ad:ci-slim    the slim variant (Debian's Python 3.11, CPU torch 2.13, numpy 2)
#   4. scripts/docker_smoke_test.sh on each (--network none), printing per image
#        image=<tag> size_mb=<N> cold_start_s=<X> smoke=ok
#      then scripts/docker_distributed_test.sh (two containers algo-1, algo-2 on an internal network)
#        image=<tag> distributed=ok peer_failure_s=<X>
#   5. the listing's client flow with the SageMaker Python SDK v2 in local mode against the default
#      image (tests/test_image_sdk_local.py; needs docker-compose, installed here when missing).
# Fails (non-zero) when any step fails. Environment: IMAGES="py310 dlc213 slim" (the default) selects the
# builds; SDK_TEST=0 skips step 5; LSTM_AD_CACHE (default /var/cache/lstm-ad) holds the caches.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${LSTM_AD_CACHE:-/var/cache/lstm-ad}"
IMAGES="${IMAGES:-py310 dlc213 slim}"
export DOCKER_BUILDKIT=0  # the Dockerfile needs nothing of BuildKit; Debian's docker.io has no buildx

log() { printf '\n[test_image %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
fail() { printf 'test_image: FAILED: %s\n' "$*" >&2; exit 1; }

mkdir -p "$CACHE"
engine="$(bash scripts/docker_engine.sh start)"
if [ "$engine" = "engine=started" ]; then
    trap 'bash scripts/docker_engine.sh stop' EXIT
fi
trap 'exit 130' INT  # a signal becomes an exit, so the EXIT trap stops the engine we started
trap 'exit 143' TERM
log "Docker engine: ${engine#engine=} ($(docker version -f '{{.Server.Version}}'))"

started=$SECONDS
bases=()  # the bases the selected variants build on
for variant in $IMAGES; do
    case "$variant" in
        py310) bases+=(py310) ;;
        dlc213) bases+=(py311 dlc213) ;;  # the 2.13 stand-in is made from the py311 base
        slim) bases+=(py311) ;;
    esac
done
bash scripts/make_base_images.sh "${bases[@]}"
log "base images ready in $(( SECONDS - started )) s"

build() {  # tag base [numpy-requirement; default: the Dockerfile's (auto)]
    local tag="$1" old args=(--build-arg "BASE_IMAGE=$2")
    if [ -n "${3:-}" ]; then args+=(--build-arg "NUMPY_REQUIREMENT=$3"); fi
    old="$(docker image inspect -f '{{.Id}}' "$tag" 2> /dev/null || true)"
    log "building $tag on $2"
    local start=$SECONDS
    docker build "${args[@]}" -t "$tag" . > "$CACHE/build-${tag//[:\/]/-}.log" 2>&1 \
        || { tail -40 "$CACHE/build-${tag//[:\/]/-}.log"; fail "docker build of $tag failed (log: $CACHE/build-${tag//[:\/]/-}.log)"; }
    echo "built $tag in $(( SECONDS - start )) s"
    # The previous build of this tag is now untagged: remove it, or every CI run would leave one more
    # image behind; but only if no other tag names it (docker rmi by id would remove those too).
    # Still used by a container: docker refuses, and it stays; no harm.
    if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$tag")" ] \
        && [ "$(docker image inspect -f '{{len .RepoTags}}' "$old" 2> /dev/null)" = 0 ]; then
        docker rmi "$old" > /dev/null 2>&1 || true
    fi
}

summary=()
for variant in $IMAGES; do
    case "$variant" in
        py310) tag=lstm-ad:ci-py310; build "$tag" lstm-ad-base/pytorch-2.1-py310:standin ;;  # auto: numpy<2
        dlc213) tag=lstm-ad:ci-dlc213; build "$tag" lstm-ad-base/pytorch-2.13-dlc:standin  # NUMPY_REQUIREMENT auto
            docker run --rm --network none --entrypoint python3 "$tag" -c \
                "import numpy; assert numpy.__version__ == '2.4.4', numpy.__version__" \
                || fail "the build changed the base's numpy 2.4.4 (NUMPY_REQUIREMENT auto must keep it)" ;;
        slim) tag=lstm-ad:ci-slim; build "$tag" lstm-ad-base/bookworm-py311:standin "numpy>=2,<3" ;;
        *) fail "unknown image variant $variant (use py310, dlc213 and/or slim)" ;;
    esac
    log "smoke test of $tag"
    IMAGE="$tag" SKIP_BUILD=1 bash scripts/docker_smoke_test.sh | tee "$CACHE/smoke.log" \
        || fail "the smoke test of $tag failed"
    summary+=("$(grep '^image=' "$CACHE/smoke.log" | tail -1)")
    log "distributed training of $tag: two containers, hosts algo-1 and algo-2"
    IMAGE="$tag" bash scripts/docker_distributed_test.sh | tee "$CACHE/distributed.log" \
        || fail "the distributed-training test of $tag failed"
    summary+=("$(grep '^image=' "$CACHE/distributed.log" | tail -1)")
done

if [ "${SDK_TEST:-1}" = 1 ] && [[ " $IMAGES " == *" py310 "* ]]; then
    log "SageMaker Python SDK v2 local mode against lstm-ad:ci-py310"
    if ! command -v docker-compose > /dev/null && ! docker compose version > /dev/null 2>&1; then
        [ "$(id -u)" = 0 ] || fail "the SDK test needs docker-compose (or the compose plugin)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose > "$CACHE/apt.log" 2>&1 \
            || fail "apt-get install docker-compose failed (log: $CACHE/apt.log)"
    fi
    [ -x .venv/bin/python ] || bash scripts/dev-setup.sh
    LSTM_AD_IMAGE=lstm-ad:ci-py310 .venv/bin/python -m pytest -q -p no:cacheprovider -rs \
        tests/test_image_sdk_local.py || fail "the SDK local-mode test failed"
fi

log "image test passed in $(( SECONDS - started )) s"
printf '%s\n' "${summary[@]}"
