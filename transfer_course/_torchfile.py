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

__all__ = ["load_state_dict", "CheckpointFormatError"]


class CheckpointFormatError(ValueError):
    """The file is not a well-formed PyTorch ``state_dict`` (truncated, corrupted or crafted)."""

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
            raise CheckpointFormatError(f"Unsupported tensor storage {name!r} in checkpoint; supported: {sorted(_STORAGE_DTYPES)}.")
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage whose bytes are filled in after the object pickle has been read (legacy layout)."""

    def __init__(self, dtype: np.dtype, size: int):
        self.dtype, self.size, self.array = dtype, size, None


class _TensorRef:
    def __init__(self, storage: _Storage, offset: int, shape: tuple, stride: tuple):
        self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(shape), tuple(stride)

    def materialise(self) -> np.ndarray:
        """The tensor as an array, after checking that its offset, shape and strides stay inside its storage (a
        crafted file must not make us read memory outside the bytes it holds)."""
        base = self.storage.array
        if base is None:
            raise CheckpointFormatError("a tensor refers to a storage whose bytes the file does not hold")
        offset, shape, stride = self.offset, self.shape, self.stride
        ints = (offset, *shape, *stride)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            raise CheckpointFormatError(f"a tensor has a non-integer offset, shape or stride: {offset}, {shape}, {stride}")
        if offset < 0 or any(v < 0 for v in shape) or any(v < 0 for v in stride) or len(shape) != len(stride):
            raise CheckpointFormatError(f"a tensor has a negative or inconsistent offset, shape or stride: "
                                        f"{offset}, {shape}, {stride}")
        if not shape:
            if offset >= base.size:
                raise CheckpointFormatError(f"a scalar tensor at offset {offset} lies outside its storage of "
                                            f"{base.size} elements")
            return base[offset].copy()
        if 0 in shape:
            return np.zeros(shape, dtype=base.dtype)
        last = offset + sum((n - 1) * st for n, st in zip(shape, stride))
        if last >= base.size:
            raise CheckpointFormatError(f"a tensor of shape {shape} (offset {offset}, strides {stride}) reaches "
                                        f"element {last} of a storage that holds {base.size}")
        itemsize = base.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(base[offset:], shape=shape, strides=[st * itemsize for st in stride],
                                               writeable=False)
        return np.array(view, copy=True, order="C")


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
        raise CheckpointFormatError("wrong magic number")
    pickle.load(f)  # protocol version
    sys_info = pickle.load(f)
    if not sys_info.get("little_endian", True):
        raise CheckpointFormatError("big-endian checkpoints are not supported")
    storages: dict = {}
    obj = _Unpickler(f, storages).load()
    keys = pickle.load(f)
    if not isinstance(keys, list):
        raise CheckpointFormatError("the list of storages is missing")
    for key in keys:
        if key not in storages:
            raise CheckpointFormatError(f"storage {key!r} is listed but no tensor uses it")
        header = f.read(8)
        if len(header) != 8:
            raise CheckpointFormatError("the file ends before its storages (truncated download?)")
        (count,) = struct.unpack("<q", header)
        storage = storages[key]
        if count < 0 or count != storage.size:
            raise CheckpointFormatError(f"storage {key!r} says {count} elements where the tensors expect {storage.size}")
        data = f.read(count * storage.dtype.itemsize)
        if len(data) != count * storage.dtype.itemsize:
            raise CheckpointFormatError("the file ends inside a storage (truncated download?)")
        storage.array = np.frombuffer(data, dtype=storage.dtype).copy()
    return _materialise(obj)


def _load_zip(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        if not names:
            raise CheckpointFormatError("the archive is empty")
        prefix = names[0].split("/")[0]
        if f"{prefix}/data.pkl" not in names:
            raise CheckpointFormatError(f"the archive has no {prefix}/data.pkl")

        def read_storage(key, dtype):
            member = f"{prefix}/data/{key}"
            if member not in names:
                raise CheckpointFormatError(f"the archive has no storage {member}")
            data = zf.read(member)
            if len(data) % dtype.itemsize:
                raise CheckpointFormatError(f"storage {member} holds {len(data)} bytes, not a whole number of {dtype}")
            return np.frombuffer(data, dtype=dtype).copy()

        with zf.open(f"{prefix}/data.pkl") as f:
            obj = _Unpickler(io.BytesIO(f.read()), {}, read_storage).load()
    return _materialise(obj)


def load_state_dict(path: str | Path) -> "collections.OrderedDict[str, np.ndarray]":
    """Return the tensors of a PyTorch ``state_dict`` file as NumPy arrays, in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        with open(path, "rb") as f:
            return _load_legacy(f)
    except CheckpointFormatError as e:
        raise CheckpointFormatError(f"{path} is not a readable PyTorch state_dict: {e}. Download it again, or save it "
                                    "with torch.save(model.state_dict(), path).") from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, TypeError, ValueError, KeyError,
            IndexError, AttributeError) as e:
        raise CheckpointFormatError(f"{path} is not a readable PyTorch state_dict ({type(e).__name__}: {e}). "
                                    "Download it again, or save it with torch.save(model.state_dict(), path).") from None
