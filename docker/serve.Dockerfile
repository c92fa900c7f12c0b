# syntax=docker/dockerfile:1
# deepfake-mlc serving image: `deepfake-mlc predict` and `deepfake-mlc serve-bench` on exported models
# (ONNX, ONNX INT8, TensorRT engines) with onnxruntime-gpu and TensorRT. No torch, timm, Accelerate,
# MLflow or Optuna: the package is installed with --no-deps, next to the few libraries those two commands
# import. Export itself (`deepfake-mlc export CKPT ...`) needs torch and runs in the training image.
#
#   docker build -f docker/serve.Dockerfile -t deepfake-mlc-serve:0.1.0 .
#
# The CUDA and cuDNN libraries come as pip packages (onnxruntime-gpu's `cuda` and `cudnn` extras, TensorRT's
# own libs): the image needs only the host's NVIDIA driver (NVIDIA Container Toolkit, `--gpus`), and no CUDA
# base image is pulled. ONNX Runtime 1.2x+ on PyPI is built for CUDA 13, hence the cu13 TensorRT wheels.

ARG PYTHON_VERSION=3.12

# ---- stage 1: build the pure-Python wheel of the package.
FROM python:${PYTHON_VERSION}-slim-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---- stage 2: a virtual environment with the runtimes; pip and its caches stay in this stage.
FROM python:${PYTHON_VERSION}-slim-bookworm AS venv
# Runtime versions, pinned; change them together (onnxruntime-gpu's CUDA major = TensorRT's cuXX).
ARG ONNXRUNTIME_VERSION=1.31.1
ARG TENSORRT_VERSION=11.4.0.106
ARG TENSORRT_CUDA=cu13
# The libraries `predict` and `serve-bench` import besides the runtimes (a subset of the package's
# dependencies: what tests/test_docker.py checks the CLI needs when torch is absent).
ARG NUMPY_VERSION=2.4.6
ARG PILLOW_VERSION=13.0.0
ARG PYYAML_VERSION=6.0.3
ARG PYDANTIC_VERSION=2.14.3
ARG RICH_VERSION=15.0.0
# Faces in photos and videos: the MTCNN detector runs under ONNX Runtime (graphs built with onnx) from the
# weights facenet-pytorch's wheel ships, installed --no-deps (it would pull torch); PyAV decodes videos.
ARG ONNX_VERSION=1.23.2
ARG AV_VERSION=18.1.0
ARG FACENET_PYTORCH_VERSION=2.5.3
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=wheel /wheels /tmp/wheels
# tensorrt-cuXX-libs is fetched from NVIDIA's package index by its PyPI installer (network at build time).
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir \
        "onnxruntime-gpu[cuda,cudnn]==${ONNXRUNTIME_VERSION}" \
        "tensorrt-${TENSORRT_CUDA}==${TENSORRT_VERSION}" \
        "numpy==${NUMPY_VERSION}" \
        "pillow==${PILLOW_VERSION}" \
        "pyyaml==${PYYAML_VERSION}" \
        "pydantic==${PYDANTIC_VERSION}" \
        "rich==${RICH_VERSION}" \
        "onnx==${ONNX_VERSION}" \
        "av==${AV_VERSION}" \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps "facenet-pytorch==${FACENET_PYTORCH_VERSION}" \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps /tmp/wheels/deepfake_mlc-*.whl \
 && /opt/venv/bin/python -c "import onnxruntime as ort; assert 'CUDAExecutionProvider' in ort.get_available_providers()" \
 && /opt/venv/bin/python -c "import importlib.util as u; assert u.find_spec('torch') is None, 'torch must not be in the serve image'"

# ---- stage 3: the runtime image: Python, the virtual environment, nothing else.
FROM python:${PYTHON_VERSION}-slim-bookworm AS serve
ARG PYTHON_VERSION
ARG VERSION=0.1.0
ARG APP_UID=1000
LABEL org.opencontainers.image.title="deepfake-mlc-serve" \
      org.opencontainers.image.description="deepfake-mlc predict and serve-bench on ONNX / TensorRT models (onnxruntime-gpu, TensorRT)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/deepfake-mlc/deepfake-mlc" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:${PYTHON_VERSION}-slim-bookworm"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=venv /opt/venv /opt/venv
# The CUDA, cuDNN and TensorRT shared libraries live in site-packages (nvidia/*/lib, tensorrt_libs); register
# them with the dynamic loader so the ONNX Runtime CUDA/TensorRT providers and TensorRT find them.
RUN find /opt/venv/lib -type d \( -path '*/nvidia/*/lib' -o -name tensorrt_libs \) \
        > /etc/ld.so.conf.d/zz-pip-gpu-libs.conf \
 && ldconfig \
 && groupadd --gid "${APP_UID}" app \
 && useradd --uid "${APP_UID}" --gid app --create-home --shell /bin/bash app \
 && mkdir -p /models /data /runs \
 && chown app:app /runs
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/app
# The launcher, so `python serve_bench ...` works as in the repository (export needs torch: training image).
WORKDIR /app
COPY serve_bench ./serve_bench
USER ${APP_UID}:${APP_UID}

# /models: exported models (read-only); /data: images or a data set to benchmark on; /runs: reports.
VOLUME ["/models", "/data", "/runs"]
# One-shot commands (predict, serve-bench): their exit status is their health, so no HEALTHCHECK.
ENTRYPOINT ["deepfake-mlc"]
CMD ["predict", "--help"]
