"""Read a PyTorch checkpoint into NumPy arrays without importing torch.

The TensorFlow side of the course uses the same ImageNet weights as the PyTorch side, and a
TensorFlow-only student must not need torch to get them. PyTorch checkpoints are pickles whose
tensors point at raw storages; this module understands the two layouts ``torch.save`` has used:

* the legacy stream (PyTorch < 1.6): magic number, protocol version, system info, the object
  pickle, the list of storage keys, then each storage as ``int64 count`` + raw bytes;
* the zip archive (PyTorch >= 1.6): ``archive/data.pkl`` plus one ``archive/data/<key>`` per storage.

Only plain tensors in (nested) dicts are supported, which is what a ``state_dict`` holds.
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["load_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        if name not in _STORAGE_DTYPES:
            raise ValueError(f"Unsupported tensor storage {name!r} in checkpoint; supported: {sorted(_STORAGE_DTYPES)}.")
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage whose bytes are filled in after the object pickle has been read (legacy layout)."""

    def __init__(self, dtype: np.dtype, size: int):
        self.dtype, self.size, self.array = dtype, size, None


class _TensorRef:
    def __init__(self, storage: _Storage, offset: int, shape: tuple, stride: tuple):
        self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(shape), tuple(stride)

    def materialise(self) -> np.ndarray:
        base = self.storage.array
        if not self.shape:
            return base[self.offset].copy()
        itemsize = base.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.shape, strides=[s * itemsize for s in self.stride]
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return _TensorRef(storage, storage_offset, size, stride)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, storages: dict, read_storage=None):
        super().__init__(file, encoding="latin1")
        self._storages, self._read_storage = storages, read_storage

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, requires_grad, hooks: data
        raise pickle.UnpicklingError(f"Checkpoint refers to {module}.{name}, which a state_dict reader does not load.")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, size = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"Unknown persistent id kind {kind!r}.")
        if isinstance(storage_type, _StorageType):
            dtype = storage_type.dtype
        else:  # newer zip files use torch.UntypedStorage + a dtype; not produced for our weights
            raise pickle.UnpicklingError("Untyped storages are not supported by this reader.")
        if key not in self._storages:
            storage = _Storage(dtype, size)
            if self._read_storage is not None:
                storage.array = self._read_storage(key, dtype)
            self._storages[key] = storage
        return self._storages[key]


def _materialise(obj):
    if isinstance(obj, _TensorRef):
        return obj.materialise()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialise(v)) for k, v in obj.items())
    return obj


def _load_legacy(f) -> dict:
    magic = pickle.load(f)
    if magic != _LEGACY_MAGIC:
        raise ValueError("Not a PyTorch checkpoint (wrong magic number).")
    pickle.load(f)  # protocol version
    sys_info = pickle.load(f)
    if not sys_info.get("little_endian", True):
        raise ValueError("Big-endian checkpoints are not supported.")
    storages: dict = {}
    obj = _Unpickler(f, storages).load()
    keys = pickle.load(f)
    for key in keys:
        (count,) = struct.unpack("<q", f.read(8))
        storage = storages[key]
        storage.array = np.frombuffer(f.read(count * storage.dtype.itemsize), dtype=storage.dtype).copy()
    return _materialise(obj)


def _load_zip(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        prefix = names[0].split("/")[0]

        def read_storage(key, dtype):
            return np.frombuffer(zf.read(f"{prefix}/data/{key}"), dtype=dtype).copy()

        with zf.open(f"{prefix}/data.pkl") as f:
            obj = _Unpickler(io.BytesIO(f.read()), {}, read_storage).load()
    return _materialise(obj)


def load_state_dict(path: str | Path) -> "collections.OrderedDict[str, np.ndarray]":
    """Return the tensors of a PyTorch ``state_dict`` file as NumPy arrays, in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    with open(path, "rb") as f:
        return _load_legacy(f)
