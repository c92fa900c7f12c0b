"""The MTCNN weights that facenet-pytorch's wheel ships, read without torch.

The serving image has no torch, but the weights (MIT) are in the wheel as ``data/{pnet,rnet,onet}.pt``:
state dicts in torch's legacy (pre-zip) format. That format is five pickles in a row (a magic number,
a format version, the saving machine's type sizes, the state dict with each storage left as a
persistent id, the sorted list of storage keys), then each storage's data in key order: an 8-byte
little-endian element count and the raw little-endian elements.

The unpickler allows only the globals such a file names (``collections.OrderedDict``, torch's tensor
rebuild function and its storage types, all replaced by our own stand-ins), so a tampered file cannot run
code; every tensor's size, stride and offset is checked against its storage before it is viewed.
"""

from __future__ import annotations

import importlib.util
import io
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_mlc.errors import DetectorUnavailable, WeightsError

NETWORKS = ("pnet", "rnet", "onet")
PACKAGE = "facenet_pytorch"  # the distribution whose wheel has the weights in PACKAGE/data
INSTALL_HINT = 'pip install "facenet-pytorch>=2.5.3,<2.6" --no-deps'

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch/serialization.py: MAGIC_NUMBER
_FORMAT_VERSION = 1001  # torch/serialization.py: PROTOCOL_VERSION
_STORAGE_DTYPES = {  # the torch storage classes of the dtypes a state dict holds
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


def facenet_weights_dir() -> Path:
    """The wheel's ``data`` folder with the three ``.pt`` files; found by spec, since importing it imports torch."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "data"
        if all((folder / f"{name}.pt").is_file() for name in NETWORKS):
            return folder
    raise DetectorUnavailable(f"the face detector needs MTCNN's weights from facenet-pytorch's wheel: {INSTALL_HINT}")


@dataclass(frozen=True)
class _StorageType:
    """Stands in for a ``torch.*Storage`` class: all the loader needs of it is the element type."""

    name: str
    dtype: np.dtype


@dataclass
class _Storage:
    """A storage whose bytes come after the pickles; ``data`` is filled in once they are read."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _StorageView:
    """A slice of a storage (old files record some storages as views into a bigger one)."""

    root: _Storage
    offset: int
    numel: int


@dataclass(frozen=True)
class _PendingTensor:
    """A tensor recorded while unpickling, viewed into its storage once the storage's data is there."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialise(self, source: Path) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise WeightsError(f"{source}: storage {self.storage.key} has no data")
        if len(self.size) != len(self.stride) or min((*self.size, *self.stride, self.offset), default=0) < 0:
            raise WeightsError(f"{source}: a tensor of size {self.size} has stride {self.stride}")
        if 0 in self.size:
            return np.zeros(self.size, dtype=data.dtype.newbyteorder("="))
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        if last >= data.size:
            raise WeightsError(f"{source}: a tensor of size {self.size} reaches past its storage of {data.size}")
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=[s * item for s in self.stride], writeable=False
        )
        return np.ascontiguousarray(view, dtype=data.dtype.newbyteorder("="))


def _rebuild_tensor(storage: _Storage | _StorageView, offset: int, size: Any, stride: Any, *_: Any) -> _PendingTensor:
    """Our ``torch._utils._rebuild_tensor_v2``: requires_grad, hooks and metadata do not matter here."""
    if isinstance(storage, _StorageView):
        storage, offset = storage.root, storage.offset + int(offset)
    if not isinstance(storage, _Storage):
        raise WeightsError("a tensor whose storage is not a persistent storage")
    return _PendingTensor(storage, int(offset), tuple(int(n) for n in size), tuple(int(s) for s in stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of a legacy state dict, and storages by their persistent ids."""

    def __init__(self, file: io.BytesIO, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"a weights file may not name {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        # ('storage', type, key, location, numel, view): view is None or (view key, offset, view numel)
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] in ("storage", b"storage")):
            raise pickle.UnpicklingError(f"unknown persistent id {str(pid)[:80]}")
        _, kind, key, _location, numel, view = pid
        if not isinstance(kind, _StorageType):
            raise pickle.UnpicklingError("a storage of no storage type")
        key = key.decode() if isinstance(key, bytes) else str(key)
        storage = self._storages.setdefault(key, _Storage(key, kind.dtype, int(numel)))
        if storage.dtype != kind.dtype or storage.numel != int(numel):
            raise pickle.UnpicklingError(f"storage {key} is recorded twice with different types or sizes")
        if view is None:
            return storage
        _view_key, view_offset, view_numel = view
        return _StorageView(storage, int(view_offset), int(view_numel))


def _load_pickle(file: io.BytesIO, storages: dict[str, _Storage]) -> Any:
    return _RestrictedUnpickler(file, storages).load()


def load_legacy_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a torch legacy-format state dict file, by name, as numpy arrays (native byte order)."""
    path = Path(path)
    file = io.BytesIO(path.read_bytes())
    storages: dict[str, _Storage] = {}
    try:
        if _load_pickle(file, storages) != _MAGIC_NUMBER:
            raise WeightsError(f"{path}: not a torch legacy-format file (no magic number)")
        if _load_pickle(file, storages) != _FORMAT_VERSION:
            raise WeightsError(f"{path}: a torch legacy format other than version {_FORMAT_VERSION}")
        info = _load_pickle(file, storages)
        if not (isinstance(info, dict) and info.get("little_endian", False)):
            raise WeightsError(f"{path}: saved on a big-endian machine, which this reader does not handle")
        state = _load_pickle(file, storages)
        keys = _load_pickle(file, storages)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError) as err:
        if isinstance(err, WeightsError):
            raise
        raise WeightsError(f"{path}: not a readable torch legacy-format file ({err})") from None
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise WeightsError(f"{path}: holds no state dict")
    for key in keys:
        key = key.decode() if isinstance(key, bytes) else str(key)
        storage = storages.get(key)
        if storage is None:
            raise WeightsError(f"{path}: data for storage {key}, which no tensor uses")
        count = int.from_bytes(file.read(8), "little", signed=True)
        if count != storage.numel:
            raise WeightsError(f"{path}: storage {key} holds {count} elements, its tensors say {storage.numel}")
        raw = file.read(count * storage.dtype.itemsize)
        if len(raw) != count * storage.dtype.itemsize:
            raise WeightsError(f"{path}: ends inside storage {key}")
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    tensors = {}
    for name, value in state.items():
        if not isinstance(value, _PendingTensor):
            raise WeightsError(f"{path}: {name} is not a tensor")
        tensors[str(name)] = value.materialise(path)
    return tensors
