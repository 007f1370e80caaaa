# LSTM-AD for Amazon SageMaker: one image for training (`train`) and inference (`serve`).
#
# Default base: the AWS PyTorch 2.1.0 / Python 3.10 SageMaker training image (CPU), the
# listing-compatible build. Any base with a python3 (first on PATH) that has torch and pip will do:
#   docker build -t lstm-ad:cpu .
#   docker build -t lstm-ad:gpu --build-arg BASE_TAG=2.1.0-gpu-py310-cu121-ubuntu20.04-sagemaker .
#   docker build -t lstm-ad:cpu-2.13 \
#       --build-arg BASE_IMAGE=public.ecr.aws/deep-learning-containers/pytorch:2.13.0-cpu-amzn2023-sagemaker .
#   docker build -t lstm-ad:slim --build-arg BASE_IMAGE=<python + CPU torch>=2.6 image> .
# Pulling the AWS 2.1 image needs `docker login` to ${DLC_ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com first
# (scripts/build_and_push.sh does it). The PyTorch 2.1 images reached end of patch on 2024-10-04; the
# PyTorch 2.13 ones (Amazon Linux 2023, Python 3.12) are patched until 2027-07-20.
# Nothing here needs BuildKit: the classic builder (DOCKER_BUILDKIT=0) builds it too.
# docs/image-and-publishing.md: which variant to publish, sizes, start-up times, scan findings.
ARG REGION=us-east-1
ARG DLC_ACCOUNT=763104351884
ARG BASE_TAG=2.1.0-cpu-py310-ubuntu20.04-sagemaker
ARG BASE_IMAGE=${DLC_ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/pytorch-training:${BASE_TAG}

FROM ${BASE_IMAGE}

# auto: "numpy<2" under torch < 2.3 (torch 2.1's `Tensor.numpy()` breaks on numpy 2), else "numpy>=1.23,<3",
# which keeps a newer base's own numpy (AWS's 2.13 image ships numpy 2.4). Or any pip requirement.
ARG NUMPY_REQUIREMENT=auto

LABEL org.opencontainers.image.title="lstm-ad-sagemaker" \
      org.opencontainers.image.description="LSTM-AD time-series anomaly detection as a SageMaker algorithm" \
      org.opencontainers.image.licenses="Apache-2.0" \
      com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true

# OMP_WAIT_POLICY=PASSIVE: OpenMP threads sleep instead of spinning while they wait for work. With
# spinning threads, one competing busy process on a 2-core machine made a 2-thread LSTM training step
# of torch 2.1 2-9x slower (scripts/bench_contention.py; 3.7 s instead of 41 ms in an earlier manual
# measurement). A default only: `docker run -e OMP_WAIT_POLICY=ACTIVE` or SageMaker's `Environment`
# overrides it. Figures: docs/image-and-publishing.md.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    OMP_WAIT_POLICY=PASSIVE

# Install without touching the base's torch: a constraints file pins it to the installed version,
# our package goes in with --no-deps (its torch requirement is met by the base), and the check
# fails the build if torch changed, numpy does not suit it, or a requirement is unmet.
# Dependencies first, our code second: a code change does not reinstall the dependencies.
COPY docker/requirements.txt /opt/program/
RUN TORCH_VERSION="$(python3 -c 'import torch; print(torch.__version__)')" \
    && echo "${TORCH_VERSION}" > /tmp/base-torch-version \
    && echo "torch==${TORCH_VERSION%%+*}" > /tmp/constraints.txt \
    && NUMPY="${NUMPY_REQUIREMENT}" \
    && if [ "${NUMPY}" = auto ]; then NUMPY="$(python3 -c 'import re, torch; \
v = tuple(int(x) for x in re.match(r"(\d+)\.(\d+)", torch.__version__).groups()); \
print("numpy<2" if v < (2, 3) else "numpy>=1.23,<3")')"; fi \
    && echo "numpy requirement: ${NUMPY}" \
    && python3 -m pip install --no-cache-dir -c /tmp/constraints.txt \
        -r /opt/program/requirements.txt "${NUMPY}"

COPY docker/entrypoint.py docker/check_image.py /opt/program/
COPY pyproject.toml README.md /tmp/lstm-ad-src/
COPY container/lstm_ad /tmp/lstm-ad-src/container/lstm_ad
RUN python3 -m pip install --no-cache-dir --no-deps /tmp/lstm-ad-src \
    && python3 /opt/program/check_image.py --expect-torch "$(cat /tmp/base-torch-version)" \
    && python3 -c "import numpy, torch; torch.zeros(1).numpy(); print('numpy', numpy.__version__, 'torch', torch.__version__)" \
    && rm -rf /tmp/lstm-ad-src /tmp/constraints.txt /tmp/base-torch-version

EXPOSE 8080

# Our own exec-form entrypoint: `train` (the default) or `serve`; the base's toolkit never runs.
ENTRYPOINT ["python3", "/opt/program/entrypoint.py"]
CMD ["train"]
