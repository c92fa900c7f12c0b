"""The NVIDIA driver API through ctypes: is there a CUDA GPU, its name, and device memory for TensorRT.

PyTorch used to answer these; the serving image has no torch. The driver library (``libcuda``) comes
with the NVIDIA driver (the container toolkit mounts it), so asking it needs no CUDA toolkit and no
Python package, and it honours ``CUDA_VISIBLE_DEVICES`` as PyTorch does.
"""

from __future__ import annotations

import ctypes
import weakref
from functools import cache

import numpy as np

LIBRARIES = ("libcuda.so.1", "libcuda.so", "nvcuda.dll")
CU_STREAM_NON_BLOCKING = 1  # no implicit synchronisation with the legacy default stream
_ptr, _dptr = ctypes.c_void_p, ctypes.c_uint64  # CUcontext / CUstream, CUdeviceptr
_int_p, _ptr_p = ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_void_p)
SIGNATURES = {  # argument types: without them ctypes passes Python ints as 32-bit C ints
    "cuInit": (ctypes.c_uint,),
    "cuGetErrorName": (ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)),
    "cuDeviceGetCount": (_int_p,),
    "cuDeviceGet": (_int_p, ctypes.c_int),
    "cuDeviceGetName": (ctypes.c_char_p, ctypes.c_int, ctypes.c_int),
    "cuDevicePrimaryCtxRetain": (_ptr_p, ctypes.c_int),
    "cuCtxSetCurrent": (_ptr,),
    "cuStreamCreate": (_ptr_p, ctypes.c_uint),
    "cuStreamSynchronize": (_ptr,),
    "cuMemAlloc_v2": (ctypes.POINTER(_dptr), ctypes.c_size_t),
    "cuMemFree_v2": (_dptr,),
    "cuMemcpyHtoDAsync_v2": (_dptr, _ptr, ctypes.c_size_t, _ptr),
    "cuMemcpyDtoHAsync_v2": (_ptr, _dptr, ctypes.c_size_t, _ptr),
}


class CudaError(RuntimeError):
    """A driver call that failed, named with the driver's error name."""


@cache
def driver() -> ctypes.CDLL | None:
    """The initialised driver, or ``None`` where there is no NVIDIA driver or it sees no usable GPU."""
    for name in LIBRARIES:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        for function, argtypes in SIGNATURES.items():
            getattr(lib, function).argtypes = argtypes
        return lib if lib.cuInit(0) == 0 else None
    return None


def _check(lib: ctypes.CDLL, function: str, *args: object) -> None:
    status = getattr(lib, function)(*args)
    if status != 0:
        name = ctypes.c_char_p()
        lib.cuGetErrorName(status, ctypes.byref(name))
        raise CudaError(f"{function} failed: {name.value.decode() if name.value else f'error {status}'}")


def device_count() -> int:
    """CUDA GPUs this process may use (0 without a driver)."""
    lib = driver()
    count = ctypes.c_int(0)
    return count.value if lib is not None and lib.cuDeviceGetCount(ctypes.byref(count)) == 0 else 0


def device_name(index: int = 0) -> str:
    lib = _require()
    device, name = ctypes.c_int(), ctypes.create_string_buffer(256)
    _check(lib, "cuDeviceGet", ctypes.byref(device), index)
    _check(lib, "cuDeviceGetName", name, len(name), device)
    return name.value.decode()


def _require() -> ctypes.CDLL:
    lib = driver()
    if lib is None:
        raise CudaError("no NVIDIA driver or no CUDA GPU here")
    return lib


class Stream:
    """A non-blocking stream on GPU 0's primary context (the one TensorRT and the CUDA runtime use)."""

    def __init__(self) -> None:
        self._lib = lib = _require()
        device, self._context, self._stream = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_void_p()
        _check(lib, "cuDeviceGet", ctypes.byref(device), 0)
        _check(lib, "cuDevicePrimaryCtxRetain", ctypes.byref(self._context), device)
        self.activate()
        _check(lib, "cuStreamCreate", ctypes.byref(self._stream), CU_STREAM_NON_BLOCKING)

    @property
    def handle(self) -> int:
        """The ``cudaStream_t`` as an integer, what ``execute_async_v3`` takes."""
        return self._stream.value or 0

    def activate(self) -> None:
        """Make the context current on the calling thread (a context is per thread)."""
        _check(self._lib, "cuCtxSetCurrent", self._context)

    def allocate(self, nbytes: int) -> int:
        """Device memory freed when this stream is garbage-collected; its address."""
        address = ctypes.c_uint64()
        _check(self._lib, "cuMemAlloc_v2", ctypes.byref(address), nbytes)
        weakref.finalize(self, self._lib.cuMemFree_v2, address.value)
        return address.value

    def to_device(self, address: int, array: np.ndarray) -> None:
        _check(self._lib, "cuMemcpyHtoDAsync_v2", address, array.ctypes.data, array.nbytes, self._stream)

    def to_host(self, array: np.ndarray, address: int) -> None:
        _check(self._lib, "cuMemcpyDtoHAsync_v2", array.ctypes.data, address, array.nbytes, self._stream)

    def synchronize(self) -> None:
        _check(self._lib, "cuStreamSynchronize", self._stream)
