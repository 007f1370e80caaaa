#!/usr/bin/env bash
# Build the image and push it to your Amazon ECR repository (needs Docker and AWS credentials).
#
#   scripts/build_and_push.sh [VARIANT] [tag]       login, build, smoke test, push, print the digest
#   scripts/build_and_push.sh login                 log in to the base-image registry and to your ECR
#   scripts/build_and_push.sh build VARIANT <tag>   build <repo>:<tag>-<variant> locally
#   scripts/build_and_push.sh push  VARIANT <tag>   push it (creating the repository) and print its digest
#   scripts/build_and_push.sh tag                   print the default tag (below)
#
# VARIANT (default cpu): the base image, one of AWS's SageMaker PyTorch training images
#   cpu, gpu           PyTorch 2.1.0 / Python 3.10 / Ubuntu 20.04 (CUDA 12.1): the listing-compatible stack,
#                      past AWS's end of patch (2024-10-04)
#   cpu-2.13, gpu-2.13 PyTorch 2.13.0 / Python 3.12 / Amazon Linux 2023 (CUDA 13.3), from public.ecr.aws:
#                      patched by AWS until 2027-07-20 (docs/image-and-publishing.md: which to list)
#
# Environment: AWS_REGION (or AWS_DEFAULT_REGION), IMAGE_REPO (default lstm-ad), DLC_ACCOUNT (AWS's
# Deep Learning Containers account, 763104351884 in most regions; opt-in regions differ), BASE_IMAGE
# (any other base), NUMPY_REQUIREMENT (default: the Dockerfile's auto), SMOKE_TEST=0 skips
# scripts/docker_smoke_test.sh. The tag defaults to the commit (short): CODEBUILD_RESOLVED_SOURCE_VERSION,
# else git's; where neither exists (a CodeBuild project with an S3 source has no commit) it is
# build-<CODEBUILD_BUILD_NUMBER or "local">-<UTC time>.
set -euo pipefail
cd "$(dirname "$0")/.."

REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
IMAGE_REPO="${IMAGE_REPO:-lstm-ad}"
DLC_ACCOUNT="${DLC_ACCOUNT:-763104351884}"
PUBLIC_DLC="public.ecr.aws/deep-learning-containers"

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

base_image() {  # variant -> the base image
    local private="$DLC_ACCOUNT.dkr.ecr.$REGION.amazonaws.com/pytorch-training"
    case "$1" in
        cpu) echo "$private:2.1.0-cpu-py310-ubuntu20.04-sagemaker" ;;
        gpu) echo "$private:2.1.0-gpu-py310-cu121-ubuntu20.04-sagemaker" ;;
        cpu-2.13) echo "$PUBLIC_DLC/pytorch:2.13.0-cpu-amzn2023-sagemaker" ;;
        gpu-2.13) echo "$PUBLIC_DLC/pytorch:2.13.0-cu133-amzn2023-sagemaker" ;;
        *) echo "Unknown variant $1: use cpu, gpu, cpu-2.13 or gpu-2.13." >&2; exit 2 ;;
    esac
}

build() {  # variant tag
    local variant="${1:?variant cpu|gpu|cpu-2.13|gpu-2.13}" tag="${2:?tag}" base
    require_region
    base="$(base_image "$variant")" || exit 2  # an unknown variant, even with BASE_IMAGE set
    base="${BASE_IMAGE:-$base}"
    local args=(--build-arg "BASE_IMAGE=$base")
    if [ -n "${NUMPY_REQUIREMENT:-}" ]; then args+=(--build-arg "NUMPY_REQUIREMENT=$NUMPY_REQUIREMENT"); fi
    # The classic builder unless DOCKER_BUILDKIT says otherwise: the Dockerfile needs nothing of BuildKit,
    # and not every Docker installation has buildx.
    DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}" docker build "${args[@]}" -t "$IMAGE_REPO:$tag-$variant" .
}

push() {  # variant tag
    local variant="${1:?variant cpu|gpu|cpu-2.13|gpu-2.13}" tag="${2:?tag}" remote
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

default_tag() {  # a valid Docker tag that names the source
    local commit="${CODEBUILD_RESOLVED_SOURCE_VERSION:-}"
    if [[ "$commit" =~ ^[0-9a-f]{7,40}$ ]]; then
        echo "${commit:0:7}"
    elif commit="$(git rev-parse --short=7 HEAD 2> /dev/null)" && [ -n "$commit" ]; then
        echo "$commit"
    else  # an S3 source (no commit) or a copy without .git
        echo "build-${CODEBUILD_BUILD_NUMBER:-local}-$(date -u +%Y%m%d%H%M%S)"
    fi
}

case "${1:-cpu}" in
    login) login ;;
    build) shift; build "$@" ;;
    push) shift; push "$@" ;;
    tag) default_tag ;;
    cpu|gpu|cpu-2.13|gpu-2.13)
        variant="${1:-cpu}"
        tag="${2:-$(default_tag)}"
        login
        build "$variant" "$tag"
        if [ "${SMOKE_TEST:-1}" = "1" ]; then
            IMAGE="$IMAGE_REPO:$tag-$variant" SKIP_BUILD=1 scripts/docker_smoke_test.sh
        fi
        push "$variant" "$tag"
        ;;
    *) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
