# syntax=docker/dockerfile:1
# deepfake-mlc training image: CUDA PyTorch + the package with its `gpu` and `postgres` extras.
# The entry point is `accelerate launch`, the default script `train` (so `docker run IMAGE ARGS...` runs
# `accelerate launch ARGS...`: accelerate options first, then `train --config ...`). No data set, weights or
# outputs are baked in: mount the data set read-only at /data and an output folder at /runs.
#
#   docker build -f docker/train.Dockerfile -t deepfake-mlc-train:0.1.0 .
#   docker build -f docker/train.Dockerfile --build-arg PYTORCH_VERSION=2.14.0 --build-arg CUDA_VERSION=12.6 \
#       -t deepfake-mlc-train:0.1.0-cu126 .
#
# The CUDA major of the base must match the CUDA build of onnxruntime-gpu that pip resolves (1.2x and
# later on PyPI: CUDA 13), or the ONNX Runtime CUDA provider cannot load; export and checks then fall back
# to the CPU.

# Build arguments used in FROM lines must be declared before the first FROM.
ARG PYTORCH_VERSION=2.14.0
ARG CUDA_VERSION=13.0
ARG CUDNN_VERSION=9
ARG PYTHON_VERSION=3.12

# ---- stage 1: build the pure-Python wheel; setuptools and the source tree stay out of the runtime image.
FROM python:${PYTHON_VERSION}-slim-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---- stage 2: the runtime, on the official CUDA PyTorch image (torch, torchvision, CUDA, cuDNN, NCCL).
FROM pytorch/pytorch:${PYTORCH_VERSION}-cuda${CUDA_VERSION}-cudnn${CUDNN_VERSION}-runtime AS train
ARG PYTORCH_VERSION
ARG CUDA_VERSION
ARG CUDNN_VERSION
ARG VERSION=0.1.0
# The user that runs training; match it to the owner of a bind-mounted output folder with
# --build-arg APP_UID=$(id -u).
ARG APP_UID=1000

LABEL org.opencontainers.image.title="deepfake-mlc-train" \
      org.opencontainers.image.description="deepfake-mlc training: accelerate launch train (DDP, multi-node), tune workers" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/deepfake-mlc/deepfake-mlc" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/pytorch/pytorch:${PYTORCH_VERSION}-cuda${CUDA_VERSION}-cudnn${CUDNN_VERSION}-runtime"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# PIP_BREAK_SYSTEM_PACKAGES: the base's Python may be marked externally managed (PEP 668); this image is
# the whole environment, so installing into it is intended (a no-op where the marker is absent).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1

COPY --from=wheel /wheels /tmp/wheels
# 1. Constrain torch/torchvision to the base image's builds: a resolver upgrade would pull a second,
#    CPU-or-other-CUDA torch from PyPI.
# 2. Install the package with the gpu (onnxruntime-gpu, TensorRT) and postgres (psycopg2) extras.
# 3. onnxruntime (a base dependency) and onnxruntime-gpu install the same `onnxruntime` module; remove the
#    CPU build and reinstall the GPU build over it so the CUDA/TensorRT providers are the ones imported.
# 4. Put the CUDA/cuDNN/TensorRT libraries that pip installed on the loader path (ldconfig), so the ONNX
#    Runtime CUDA/TensorRT providers find them without a torch import first.
# 5. Fail the build if the GPU providers, the PostgreSQL driver or the CLI are missing.
RUN pip list --format=freeze | grep -iE '^(torch|torchvision)==' > /tmp/constraints.txt \
 && wheel="$(echo /tmp/wheels/deepfake_mlc-*.whl)" \
 && pip install --no-cache-dir --constraint /tmp/constraints.txt "deepfake-mlc[gpu,postgres] @ file://${wheel}" \
 && ort_version="$(python -c "import importlib.metadata as m; print(m.version('onnxruntime-gpu'))")" \
 && pip uninstall --yes onnxruntime \
 && pip install --no-cache-dir --no-deps --force-reinstall "onnxruntime-gpu==${ort_version}" \
 && python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" \
    | xargs -I{} find {} -type d \( -path '*/nvidia/*/lib' -o -name tensorrt_libs \) \
    > /etc/ld.so.conf.d/zz-pip-gpu-libs.conf \
 && ldconfig \
 && python -c "import onnxruntime as ort; assert 'CUDAExecutionProvider' in ort.get_available_providers(), ort.get_available_providers()" \
 && python -c "import psycopg2, accelerate, deepfake_mlc.cli.main" \
 && rm -rf /tmp/wheels /tmp/constraints.txt

# Non-root user. Ubuntu 24.04 bases ship a user `ubuntu` with UID 1000: it is replaced by `app`.
RUN existing="$(getent passwd "${APP_UID}" | cut -d: -f1)" \
 && if [ -n "${existing}" ]; then userdel --remove "${existing}"; fi \
 && groupadd --gid "${APP_UID}" app \
 && useradd --uid "${APP_UID}" --gid app --create-home --shell /bin/bash app \
 && mkdir -p /data /runs \
 && chown app:app /runs

# The launchers (`accelerate launch train` runs the folder ./train) and the configs; read-only for `app`.
WORKDIR /app
COPY configs ./configs
COPY train ./train
COPY export ./export
COPY serve_bench ./serve_bench

USER ${APP_UID}:${APP_UID}
# Hub downloads (model.pretrained: true) and Accelerate's default config live in the user's home.
ENV HOME=/home/app \
    HF_HOME=/home/app/.cache/huggingface \
    TORCH_HOME=/home/app/.cache/torch \
    MPLCONFIGDIR=/home/app/.cache/matplotlib

# /data: the data set, mounted read-only; /runs: checkpoints, logs, exports (shared storage across nodes).
VOLUME ["/data", "/runs"]
# torch.distributed rendezvous on the main node (accelerate --main_process_port).
EXPOSE 29500

# A batch job: its exit status is its health, so no HEALTHCHECK.
ENTRYPOINT ["accelerate", "launch"]
CMD ["train", "--help"]
