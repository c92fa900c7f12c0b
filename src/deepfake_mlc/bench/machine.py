"""What a timing depends on besides the model: CPU, SIMD, cores, load, library versions, GPU and TF32.

Numbers from this project's CPU benchmarks move by tens of percent with another process on one core,
and GPU "fp32" is TF32 for convolutions unless turned off, so every result carries this record.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from types import ModuleType
from typing import Any

from deepfake_mlc.runtime import cuda

SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")  # what fp32 / int8 kernels use
PACKAGES = ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "numpy")


def _cpuinfo_field(name: str) -> str | None:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return None
    for line in cpuinfo.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def simd_flags() -> list[str]:
    flags = set((_cpuinfo_field("flags") or "").split())
    return [f for f in SIMD_FLAGS if f in flags]


def usable_cores() -> int:
    """Cores this process may run on (a container or ``taskset`` can allow fewer than the machine has)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages; above ~0 before a run, something else competes for the cores."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _torch() -> ModuleType | None:
    """PyTorch, whose thread count and TF32 switches a table must name; ``None`` in the serving image."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def gpu_info() -> dict[str, Any] | None:
    """The GPU's name and whether PyTorch's fp32 matmuls / convolutions run as TF32 (None without a GPU).

    The TF32 switches are ``None`` without PyTorch: no runtime then uses them.
    """
    if not cuda.device_count():
        return None
    torch = _torch()
    return {
        "name": cuda.device_name(0),
        # the fp32_precision switches (PyTorch >= 2.9), as the runners read them; allow_tf32 is deprecated
        "tf32_matmul": None if torch is None else torch.backends.cuda.matmul.fp32_precision == "tf32",
        "tf32_cudnn": None if torch is None else torch.backends.cudnn.conv.fp32_precision == "tf32",
    }


def machine_info() -> dict[str, Any]:
    torch = _torch()
    return {
        "cpu": cpu_model(),
        "simd": simd_flags(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "torch_threads": None if torch is None else torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": package_versions(),
        "gpu": gpu_info(),
    }
