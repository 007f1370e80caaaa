#!/usr/bin/env bash
# Make the local base images the image tests build on, where no image registry is reachable.
# Each is made only when `docker image inspect` does not find it (they are kept between runs).
#
#   lstm-ad-base/pytorch-2.1-py310:standin  a stand-in of AWS's PyTorch 2.1 / Python 3.10 SageMaker
#       image (the default, listing-compatible build): Debian bookworm, this machine's Python 3.10
#       at the same path, first on PATH (as the AWS image has /opt/conda/bin), and torch 2.1.0
#       (PyPI's CUDA build: it runs on CPU), numpy 1.26.4, pandas 2.2, scipy 1.11.  About 6 GB.
#   lstm-ad-base/bookworm-py311:standin     the slim variant's base: Debian bookworm's own Python
#       3.11 in a venv at /opt/venv (first on PATH) with a CPU-only torch 2.13.0 (the local wheel
#       in $TORCH_WHEEL_DIR, else PyTorch's CPU index).  About 1 GB.
#   lstm-ad-base/pytorch-2.13-dlc:standin   a stand-in of AWS's PyTorch 2.13 SageMaker image (CPU, Amazon
#       Linux 2023, Python 3.12), made from the one above (so it is made first): what matters to our
#       Dockerfile is copied from AWS's (aws/deep-learning-containers docker/pytorch/Dockerfile.cpu and
#       2.13/cpu/uv.lock at e0ecedea): a venv at /opt/venv first on PATH with torch 2.13.0 and numpy 2.4.4,
#       pandas 2.3.3, scipy 1.17.1, flask 3.1.3, gunicorn 25.3.0; the training toolkit's `train` console
#       script on PATH (a stand-in that fails if it ever runs); empty /opt/ml folders; WORKDIR /workspace;
#       an ENTRYPOINT of its own (start_with_right_hostname.sh, here one that fails if it ever runs).
#       Not copied: Python 3.12 (the stand-in has Debian's 3.11: PyTorch's CPU index, the only source of a
#       CPU torch for 3.12, is not reachable from CI, and PyPI's Linux torch is the CUDA build, ~3 GB with
#       its libraries), Amazon Linux itself, OpenMPI and the rest of AWS's packages.  About 1.2 GB.
#
# Usage: scripts/make_base_images.sh [py310|py311|dlc213 ...]   (default: all three)
#
# Debian's packages come from $DEBIAN_MIRROR over http, Python packages from PyPI over https.
# Both bases carry this machine's CA bundle and a pip.conf pointing at it, so that pip in
# `docker build` reaches PyPI through the same TLS setup as the host. Caches live in
# $LSTM_AD_CACHE (default /var/cache/lstm-ad), outside the repository, so a fresh clone on the
# same machine reuses them: debootstrap tarballs and the downloaded wheels (the 2.5 GB of torch 2.1
# and its nvidia libraries), kept as files in $LSTM_AD_CACHE/wheels/<base> and installed from there
# (pip's own HTTP cache is not enough: it keeps nothing when the responses it gets are not cacheable).
# Needs root (debootstrap) and a Docker engine (scripts/docker_engine.sh start).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${LSTM_AD_CACHE:-/var/cache/lstm-ad}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
PY310_IMAGE="lstm-ad-base/pytorch-2.1-py310:standin"
PY311_IMAGE="lstm-ad-base/bookworm-py311:standin"
DLC213_IMAGE="lstm-ad-base/pytorch-2.13-dlc:standin"
# The versions in AWS's PyTorch 2.13 CPU image (docker/pytorch/2.13/cpu/uv.lock at e0ecedea, 2026-08-21).
DLC213_PACKAGES="numpy==2.4.4 pandas==2.3.3 scipy==1.17.1 flask==3.1.3 gunicorn==25.3.0"
PY310_PREFIX="${PY310_PREFIX:-$(pyenv root 2>/dev/null || echo /root/.pyenv)/versions/3.10.13}"
TORCH_WHEEL_DIR="${TORCH_WHEEL_DIR:-/opt/wheels}"
TORCH_SLIM_VERSION="${TORCH_SLIM_VERSION:-2.13.0}"
# The shared libraries a pyenv-built CPython 3.10 links to (ssl, ctypes, sqlite3, bz2, lzma, readline...).
PY310_DEBS="ca-certificates,libssl3,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,libreadline8,libncursesw6,zlib1g,libexpat1,libuuid1,libgdbm6,libnsl2,libcrypt1"
PY311_DEBS="ca-certificates,python3,python3-venv"

log() { printf '[make_base_images %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'make_base_images: %s\n' "$*" >&2; exit 1; }

have_image() { docker image inspect "$1" > /dev/null 2>&1; }

need_debootstrap() {
    command -v debootstrap > /dev/null && return
    if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
        die "debootstrap is missing and cannot be installed here (needs root and apt-get)"
    fi
    log "installing debootstrap (apt-get)"
    apt-get update -q > "$CACHE/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >> "$CACHE/apt.log" 2>&1 \
        || die "apt-get install debootstrap failed (log: $CACHE/apt.log)"
}

# A Debian root file system with the given extra packages, in $2. The downloaded packages are kept
# as a debootstrap tarball named after the package list, so later runs need no download.
rootfs() {  # packages folder
    local packages="$1" target="$2" tarball
    tarball="$CACHE/debootstrap-$SUITE-$(printf '%s' "$packages" | sha256sum | cut -c1-12).tgz"
    if [ ! -s "$tarball" ]; then
        log "downloading Debian $SUITE packages (minbase + $packages) -> $tarball"
        rm -rf "$target.dl"
        debootstrap --variant=minbase --include="$packages" --make-tarball="$tarball.part" \
            "$SUITE" "$target.dl" "$DEBIAN_MIRROR" > "$CACHE/debootstrap.log" 2>&1 \
            || { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap --make-tarball failed (log: $CACHE/debootstrap.log)"; }
        mv "$tarball.part" "$tarball"
        rm -rf "$target.dl"
    fi
    log "unpacking Debian $SUITE into $target"
    debootstrap --variant=minbase --include="$packages" --unpack-tarball="$tarball" \
        "$SUITE" "$target" "$DEBIAN_MIRROR" > "$CACHE/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
    # This machine's CA bundle, and pip told to use it (pip ignores the system store otherwise).
    cp "$CA_BUNDLE" "$target/etc/ssl/certs/ca-certificates.crt"
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$target/etc/pip.conf"
    rm -rf "$target/var/cache/apt/archives/"*.deb "$target/var/lib/apt/lists/"*
}

# docker import the folder, run the install command in it (the wheel folder mounted from $CACHE, never
# part of the image), commit the result as the tag, and clean up.
import_and_install() {  # folder tag path-env install-command
    local folder="$1" tag="$2" path="$3" command="$4" raw="${2%%:*}:raw" builder="lstm-ad-base-builder-$$"
    log "importing $folder as $raw"
    tar -C "$folder" -c . | docker import --change "ENV PATH=$path" --change 'CMD ["/bin/bash"]' - "$raw" > /dev/null
    rm -rf "$folder"
    mkdir -p "$CACHE/wheels"
    log "installing Python packages in $raw (wheels kept in $CACHE/wheels)"
    local mounts=(-v "$CACHE/wheels:/wheel-cache")
    if [ -d "$TORCH_WHEEL_DIR" ]; then mounts+=(-v "$TORCH_WHEEL_DIR:/wheels:ro"); fi
    docker rm -f "$builder" > /dev/null 2>&1 || true
    if ! docker run --name "$builder" "${mounts[@]}" "$raw" bash -euc "$command"; then
        docker rm -f "$builder" > /dev/null
        die "installing the Python packages of $tag failed (output above)"
    fi
    docker commit --change 'CMD ["/bin/bash"]' "$builder" "$tag" > /dev/null
    docker rm "$builder" > /dev/null
    docker rmi "$raw" > /dev/null
    log "made $tag ($(( $(docker image inspect -f '{{.Size}}' "$tag") / 1000000 )) MB)"
}

# Shell commands (run in the container) that fetch the wheels of the requirements into the kept
# folder /wheel-cache/<name> (files already there are not downloaded again) and install from it only.
install_from_wheel_cache() {  # name requirements python [download-sources, default: the requirements]
    local dir="/wheel-cache/$1" requirements="$2" python="$3" sources="${4:-$2}"
    printf '%s -m pip download --disable-pip-version-check -q -d %s --find-links %s %s\n' \
        "$python" "$dir" "$dir" "$sources"
    printf '%s -m pip install --disable-pip-version-check -q --no-index --find-links %s %s' \
        "$python" "$dir" "$requirements"
}


make_py310() {
    [ -x "$PY310_PREFIX/bin/python3.10" ] \
        || die "no Python 3.10 at $PY310_PREFIX (set PY310_PREFIX; e.g. pyenv install 3.10.13)"
    local folder="$CACHE/rootfs-py310"
    rm -rf "$folder"
    rootfs "$PY310_DEBS" "$folder"
    mkdir -p "$folder$(dirname "$PY310_PREFIX")"
    cp -a "$PY310_PREFIX" "$folder$PY310_PREFIX"
    import_and_install "$folder" "$PY310_IMAGE" "$PY310_PREFIX/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        "$(install_from_wheel_cache py310 "torch==2.1.0 numpy==1.26.4 'pandas==2.2.*' 'scipy==1.11.*'" python3)
         python3 -c 'import torch, numpy; torch.zeros(1).numpy(); print(\"torch\", torch.__version__, \"numpy\", numpy.__version__)'"
}

make_py311() {
    local folder="$CACHE/rootfs-py311" wheel
    wheel="$(find "$TORCH_WHEEL_DIR" -maxdepth 1 -name "torch-$TORCH_SLIM_VERSION+cpu-cp311-*.whl" 2> /dev/null | head -1)"
    local torch_source="'torch==$TORCH_SLIM_VERSION' --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple"
    if [ -n "$wheel" ]; then
        torch_source="/wheels/$(basename "$wheel")"
        log "slim base: torch from the local wheel $wheel"
    fi
    rm -rf "$folder"
    rootfs "$PY311_DEBS" "$folder"
    import_and_install "$folder" "$PY311_IMAGE" "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        "python3 -m venv /opt/venv
         $(install_from_wheel_cache py311 "'torch==$TORCH_SLIM_VERSION'" /opt/venv/bin/python "$torch_source")
         python3 -c 'import torch; print(\"torch\", torch.__version__)'"
}

# From the py311 base (no debootstrap): AWS's package versions and layout, then docker commit with its
# WORKDIR, ENTRYPOINT and CMD.
make_dlc213() {
    local builder="lstm-ad-base-builder-$$" toolkit_train
    have_image "$PY311_IMAGE" || die "$DLC213_IMAGE is made from $PY311_IMAGE, which is missing"
    toolkit_train='#!/opt/venv/bin/python
# Stand-in for the SageMaker training toolkit console script (sagemaker_training.cli.train:main).
import sys
sys.exit("the base image training toolkit ran: the image should have replaced this train")'
    docker rm -f "$builder" > /dev/null 2>&1 || true
    log "installing AWS's package versions in a container of $PY311_IMAGE"
    if ! docker run --name "$builder" -v "$CACHE/wheels:/wheel-cache" "$PY311_IMAGE" bash -euc "
         $(install_from_wheel_cache py311-dlc213 "$DLC213_PACKAGES" /opt/venv/bin/python)
         printf '%s\n' '$toolkit_train' > /opt/venv/bin/train && chmod +x /opt/venv/bin/train
         printf '%s\n' '#!/bin/bash' 'echo \"the base image entrypoint ran: \$*\" >&2' 'exit 3' \
             > /usr/local/bin/start_with_right_hostname.sh && chmod +x /usr/local/bin/start_with_right_hostname.sh
         mkdir -p /opt/ml/input/data /opt/ml/model /opt/ml/output /opt/ml/code /workspace
         python3 -c 'import numpy, pandas, scipy, torch; print(\"torch\", torch.__version__, \"numpy\", numpy.__version__)'"; then
        docker rm -f "$builder" > /dev/null
        die "installing the packages of $DLC213_IMAGE failed (output above)"
    fi
    docker commit --change 'WORKDIR /workspace' \
        --change 'ENV SAGEMAKER_TRAINING_MODULE=sagemaker_pytorch_container.training:main' \
        --change 'ENV DLC_CONTAINER_TYPE=training' \
        --change 'ENTRYPOINT ["bash", "-m", "start_with_right_hostname.sh"]' --change 'CMD ["/bin/bash"]' \
        "$builder" "$DLC213_IMAGE" > /dev/null
    docker rm "$builder" > /dev/null
    log "made $DLC213_IMAGE ($(( $(docker image inspect -f '{{.Size}}' "$DLC213_IMAGE") / 1000000 )) MB)"
}

mkdir -p "$CACHE"
docker info > /dev/null 2>&1 || die "no Docker engine answers: run scripts/docker_engine.sh start"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(py310 py311 dlc213)
for target in "${targets[@]}"; do
    case "$target" in
        py310) image="$PY310_IMAGE" ;;
        py311) image="$PY311_IMAGE" ;;
        dlc213) image="$DLC213_IMAGE" ;;
        *) die "unknown base $target: use py310, py311 or dlc213" ;;
    esac
    if have_image "$image"; then
        log "$image exists: kept"
        continue
    fi
    if [ "$target" = dlc213 ] && ! have_image "$PY311_IMAGE"; then
        "$0" py311
    fi
    [ "$target" = dlc213 ] || need_debootstrap
    start=$SECONDS
    "make_$target"
    log "$image made in $(( SECONDS - start )) s"
done
