#!/usr/bin/env bash
# Build the image and push it to your Amazon ECR repository (needs Docker and AWS credentials).
#
#   scripts/build_and_push.sh [cpu|gpu] [tag]       login, build, smoke test, push, print the digest
#   scripts/build_and_push.sh login                 log in to the base-image registry and to your ECR
#   scripts/build_and_push.sh build <cpu|gpu> <tag> build <repo>:<tag>-<variant> locally
#   scripts/build_and_push.sh push  <cpu|gpu> <tag> push it (creating the repository) and print its digest
#
# Environment: AWS_REGION (or AWS_DEFAULT_REGION), IMAGE_REPO (default lstm-ad), DLC_ACCOUNT (AWS's
# Deep Learning Containers account, 763104351884 in most regions; opt-in regions differ), BASE_IMAGE
# (another base, e.g. a newer PyTorch image; then NUMPY_REQUIREMENT=numpy for torch>=2.3),
# SMOKE_TEST=0 skips scripts/docker_smoke_test.sh. The tag defaults to the git commit (short).
set -euo pipefail
cd "$(dirname "$0")/.."

REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
IMAGE_REPO="${IMAGE_REPO:-lstm-ad}"
DLC_ACCOUNT="${DLC_ACCOUNT:-763104351884}"
CPU_TAG="2.1.0-cpu-py310-ubuntu20.04-sagemaker"
GPU_TAG="2.1.0-gpu-py310-cu121-ubuntu20.04-sagemaker"

require_region() {
    [ -n "$REGION" ] || { echo "Set AWS_REGION (e.g. us-east-1)." >&2; exit 2; }
}

registry() {  # our account's ECR registry host
    local account
    account="$(aws sts get-caller-identity --query Account --output text)"
    echo "$account.dkr.ecr.$REGION.amazonaws.com"
}

login() {
    require_region
    local base="${BASE_IMAGE:-$DLC_ACCOUNT.dkr.ecr.$REGION.amazonaws.com/pytorch-training}"
    local host="${base%%/*}"
    case "$host" in  # a private ECR base (AWS's DLCs) needs a login; public.ecr.aws and Docker Hub do not
        *.dkr.ecr.*.amazonaws.com)
            aws ecr get-login-password --region "$(echo "$host" | cut -d. -f4)" \
                | docker login --username AWS --password-stdin "$host" ;;
    esac
    aws ecr get-login-password --region "$REGION" | docker login --username AWS --password-stdin "$(registry)"
}

build() {  # variant tag
    local variant="${1:?variant cpu|gpu}" tag="${2:?tag}" base_tag
    require_region
    case "$variant" in
        cpu) base_tag="$CPU_TAG" ;;
        gpu) base_tag="$GPU_TAG" ;;
        *) echo "Unknown variant $variant: use cpu or gpu." >&2; exit 2 ;;
    esac
    local args=(--build-arg "REGION=$REGION" --build-arg "DLC_ACCOUNT=$DLC_ACCOUNT" --build-arg "BASE_TAG=$base_tag")
    if [ -n "${BASE_IMAGE:-}" ]; then args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE"); fi
    if [ -n "${NUMPY_REQUIREMENT:-}" ]; then args+=(--build-arg "NUMPY_REQUIREMENT=$NUMPY_REQUIREMENT"); fi
    # The classic builder unless DOCKER_BUILDKIT says otherwise: the Dockerfile needs nothing of BuildKit,
    # and not every Docker installation has buildx.
    DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}" docker build "${args[@]}" -t "$IMAGE_REPO:$tag-$variant" .
}

push() {  # variant tag
    local variant="${1:?variant cpu|gpu}" tag="${2:?tag}" remote
    require_region
    aws ecr describe-repositories --region "$REGION" --repository-names "$IMAGE_REPO" > /dev/null 2>&1 \
        || aws ecr create-repository --region "$REGION" --repository-name "$IMAGE_REPO" \
            --image-scanning-configuration scanOnPush=true > /dev/null
    remote="$(registry)/$IMAGE_REPO:$tag-$variant"
    docker tag "$IMAGE_REPO:$tag-$variant" "$remote"
    docker push "$remote"
    local digest
    digest="$(aws ecr describe-images --region "$REGION" --repository-name "$IMAGE_REPO" \
        --image-ids "imageTag=$tag-$variant" --query 'imageDetails[0].imageDigest' --output text)"
    echo "Pushed $remote"
    echo "IMAGE_URI=$remote"
    echo "IMAGE_DIGEST=$digest"
}

default_tag() {
    git rev-parse --short=7 HEAD 2>/dev/null || date -u +%Y%m%d%H%M%S
}

case "${1:-cpu}" in
    login) login ;;
    build) shift; build "$@" ;;
    push) shift; push "$@" ;;
    cpu|gpu)
        variant="${1:-cpu}"
        tag="${2:-$(default_tag)}"
        login
        build "$variant" "$tag"
        if [ "${SMOKE_TEST:-1}" = "1" ]; then
            IMAGE="$IMAGE_REPO:$tag-$variant" SKIP_BUILD=1 scripts/docker_smoke_test.sh
        fi
        push "$variant" "$tag"
        ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
