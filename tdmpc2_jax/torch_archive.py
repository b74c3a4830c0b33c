"""Tensors of a `torch.save` archive, read without torch; nothing in the file runs.

`load` reads a checkpoint (tensors in plain containers), `read_chunk` one chunk of the official
datasets (a TensorDict, in the layouts of tensordict 0.2 and 0.8 both). The archive's pickle is parsed
by an unpickler that knows only the globals torch writes for tensors, and builds stand-ins for them;
any other global (`os.system`, `builtins.eval`, a class the file names) is refused before it can be
called. Every tensor is a view of its storage mapped from the archive (torch stores entries
uncompressed), so a file larger than memory opens at once. Only the zip format that torch has written
since 1.6 is read; the older format is refused.
"""
from __future__ import annotations

import _compat_pickle
import collections
import io
import math
import os
import pickle
import struct
import sys
import zipfile
from typing import Any, NamedTuple

import ml_dtypes
import numpy as np


class _Unsupported(Exception):
    """Content of an archive that this reader does not read (message without the file name)."""


_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
_STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16", "BFloat16Storage": _BFLOAT16,
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "UntypedStorage": "uint8",
}
_TORCH_DTYPES = {
    "float32": "float32", "float": "float32", "float64": "float64", "double": "float64",
    "float16": "float16", "half": "float16", "bfloat16": _BFLOAT16, "int64": "int64", "long": "int64",
    "int32": "int32", "int": "int32", "int16": "int16", "short": "int16", "int8": "int8", "uint8": "uint8",
    "uint16": "uint16", "uint32": "uint32", "uint64": "uint64", "bool": "bool",
    "complex64": "complex64", "complex128": "complex128",
}
_LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)  # the first record of torch's pre-1.6 format


class _StorageType(NamedTuple):
    """A torch storage class: the element type of its storages (None: untyped bytes)."""

    name: str
    dtype: np.dtype | None


class _TorchDtype(NamedTuple):
    name: str
    dtype: np.dtype | None  # None for a dtype NumPy has no match for (float8, complex32, ...)


class _Storage(NamedTuple):
    """One storage of the archive: entry `data/<key>`, elements of `dtype` (None: bytes)."""

    key: str
    dtype: np.dtype | None


class _TensorRef(NamedTuple):
    """A tensor: a view of `storage` at element `offset` with `shape` and `stride` (in elements)."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: np.dtype | None


class _TensorDictStub(dict):
    """A tensordict object as pickled: its class's qualified name, constructor args, items and state."""

    qualname = "tensordict"

    def __new__(cls, *args, **kwargs):
        self = dict.__new__(cls)
        self.args, self.state = args, None
        return self

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (__dict__, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = state


_STUB_CLASSES: dict[str, type] = {}


def _stub_class(module: str, name: str) -> type:
    qualname = f"{module}.{name}"
    if qualname not in _STUB_CLASSES:
        _STUB_CLASSES[qualname] = type(name, (_TensorDictStub,), {"qualname": qualname})
    return _STUB_CLASSES[qualname]


def _make_td(cls, state):
    td = cls.__new__(cls)
    td.__setstate__(state)
    return td


def _rebuild_tensor(storage, offset, shape, stride, *rest):
    """torch._utils._rebuild_tensor_v2 (rest: requires_grad, hooks[, metadata])."""
    return _tensor_ref(storage, offset, shape, stride, getattr(storage, "dtype", None))


def _rebuild_tensor_v3(storage, offset, shape, stride, requires_grad, hooks, dtype, *rest):
    """torch._utils._rebuild_tensor_v3: the tensor's dtype is given apart from its (untyped) storage."""
    return _tensor_ref(storage, offset, shape, stride, _numpy_dtype(dtype))


def _tensor_ref(storage, offset, shape, stride, dtype) -> _TensorRef:
    if not isinstance(storage, _Storage):
        raise _Unsupported(f"a tensor over a {type(storage).__name__}, not over a storage of the archive")
    shape, stride = tuple(int(n) for n in shape), tuple(int(s) for s in stride)
    if len(shape) != len(stride) or min(shape, default=0) < 0 or min(stride, default=0) < 0:
        raise _Unsupported(f"a tensor of shape {shape} and strides {stride}")
    return _TensorRef(storage, int(offset), shape, stride, dtype)


def _numpy_dtype(dtype) -> np.dtype:
    if not isinstance(dtype, _TorchDtype):
        raise _Unsupported(f"unexpected tensor dtype {dtype!r:.60}")
    if dtype.dtype is None:
        raise _Unsupported(f"tensors of torch.{dtype.name} have no NumPy dtype")
    return dtype.dtype


def _device(*args):
    return ":".join(str(a) for a in args)


def _reconstructor(cls, base, state):
    obj = cls.__new__(cls)
    if state is not None:
        obj.__setstate__(state)
    return obj


_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "tuple"): tuple,
    ("builtins", "list"): list, ("builtins", "dict"): dict, ("builtins", "slice"): slice,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch", "Size"): tuple,
    ("torch", "device"): _device,
}


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """A global as Python 3 names it; protocol-2 pickles use Python 2 names (`__builtin__.set`)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class _Unpickler(pickle.Unpickler):
    """Unpickles a torch.save `data.pkl` into stand-ins; refuses every global it does not know."""

    def find_class(self, module, name):
        module, name = _python3_name(module, name)
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module in ("torch", "torch.storage") and name in _STORAGE_DTYPES:
            return _StorageType(name, None if name == "UntypedStorage" else np.dtype(_STORAGE_DTYPES[name]))
        if module == "torch" and name.endswith("Storage"):
            raise _Unsupported(f"storage type torch.{name} has no NumPy dtype")
        if module == "torch" and (name in _TORCH_DTYPES or name.startswith(("float8", "complex32"))):
            return _TorchDtype(name, np.dtype(_TORCH_DTYPES[name]) if name in _TORCH_DTYPES else None)
        raise _Unsupported(f"not a plain archive of tensors: it asks to run {module}.{name}, which is refused")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise _Unsupported(f"unsupported persistent id {pid!r:.60}")
        storage_type, key = pid[1], str(pid[2])
        if isinstance(storage_type, _TorchDtype):  # some torch versions name a dtype here
            return _Storage(key, _numpy_dtype(storage_type))
        if not isinstance(storage_type, _StorageType):
            raise _Unsupported(f"unsupported storage type {storage_type!r:.60}")
        return _Storage(key, storage_type.dtype)


class _ChunkUnpickler(_Unpickler):
    """`_Unpickler` that also builds stand-ins for the tensordict classes of a dataset chunk."""

    def find_class(self, module, name):
        if _python3_name(module, name) == ("copyreg", "_reconstructor"):  # torch.save(..., pickle_protocol=1)
            return _reconstructor
        if module == "tensordict" or module.startswith("tensordict."):
            return _make_td if name == "_make_td" else _stub_class(module, name)
        return super().find_class(module, name)


def _entry_data_offset(file, info: zipfile.ZipInfo) -> int:
    """Byte offset of an entry's data in the archive (after its local file header)."""
    file.seek(info.header_offset)
    header = file.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise _Unsupported(f"bad zip local header for {info.filename}")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _not_zip_reason(path: str) -> str:
    with open(path, "rb") as file:
        legacy = file.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC
    if legacy:
        return ("cannot read it: a torch.save file in the format of torch < 1.6, which is not read "
                "(save it again with a newer torch)")
    return "cannot read it: not a torch.save zip archive (a damaged file, or no checkpoint at all)"


class _Archive:
    """The entries of one torch.save zip archive."""

    def __init__(self, path: str):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise _Unsupported(_not_zip_reason(path)) from None
        pickles = [n for n in self.zip.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise _Unsupported("not a torch.save zip archive (no single <name>/data.pkl entry)")
        self.prefix = pickles[0][: -len("data.pkl")]
        byteorder = self._read_optional("byteorder", b"little").decode(errors="replace")
        if byteorder not in ("little", "big"):
            raise _Unsupported(f"unknown byte order {byteorder!r}")
        self.byteorder = byteorder

    def _read_optional(self, name: str, default: bytes) -> bytes:
        try:
            return self.zip.read(self.prefix + name)
        except KeyError:
            return default

    def unpickle(self, unpickler: type[_Unpickler]) -> Any:
        """The object of `data.pkl`, with stand-ins for tensors (and tensordicts where `unpickler` reads them)."""
        try:
            return unpickler(io.BytesIO(self.zip.read(self.prefix + "data.pkl"))).load()
        except _Unsupported:
            raise
        except Exception as error:  # a damaged pickle raises many kinds of error
            raise _Unsupported(f"unreadable pickle ({type(error).__name__}: {error})") from None

    def storage(self, storage: _Storage, dtype: np.dtype) -> np.ndarray:
        """The whole storage as a 1-D array of `dtype`, mapped from the archive where it is stored."""
        try:
            info = self.zip.getinfo(f"{self.prefix}data/{storage.key}")
        except KeyError:
            raise _Unsupported(f"storage data/{storage.key} is missing from the archive") from None
        dtype = self._ordered(dtype)
        count = info.file_size // dtype.itemsize
        if count == 0:
            return np.zeros((0,), dtype)
        if info.compress_type != zipfile.ZIP_STORED:
            return np.frombuffer(self.zip.read(info), dtype, count)
        with open(self.path, "rb") as file:
            offset = _entry_data_offset(file, info)
        return np.memmap(self.path, dtype=dtype, mode="r", offset=offset, shape=(count,))

    def _ordered(self, dtype: np.dtype) -> np.dtype:
        """`dtype` in the archive's byte order."""
        if dtype.itemsize == 1 or self.byteorder == sys.byteorder:
            return dtype
        if dtype.kind == "V":  # bfloat16 has no byte-swapped form
            raise _Unsupported(f"{dtype} tensors in {self.byteorder}-endian order are not read")
        return dtype.newbyteorder("<" if self.byteorder == "little" else ">")


def _view(archive: _Archive, ref: _TensorRef) -> np.ndarray:
    """The tensor `ref` as an array over its storage (a memmap for a contiguous tensor)."""
    dtype = ref.dtype if ref.dtype is not None else ref.storage.dtype
    if dtype is None:
        raise _Unsupported("a tensor over untyped storage names no dtype")
    flat = archive.storage(ref.storage, np.dtype(dtype))
    size = math.prod(ref.shape)
    if size == 0:
        return np.zeros(ref.shape, flat.dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride))
    if ref.offset < 0 or last >= len(flat):
        raise _Unsupported(f"tensor of shape {ref.shape} lies outside its storage of {len(flat)} elements")
    contiguous = tuple(math.prod(ref.shape[i + 1:]) for i in range(len(ref.shape)))
    if all(s == c for n, s, c in zip(ref.shape, ref.stride, contiguous) if n > 1):
        return flat[ref.offset: ref.offset + size].reshape(ref.shape)
    strides = tuple(s * flat.dtype.itemsize for s in ref.stride)
    return np.lib.stride_tricks.as_strided(flat[ref.offset:], ref.shape, strides, writeable=False)


def _with_arrays(archive: _Archive, obj: Any) -> Any:
    """`obj` with each tensor stand-in replaced by its array, through dicts, lists and tuples."""
    if isinstance(obj, _TensorRef):
        return _view(archive, obj)
    if type(obj) in (dict, collections.OrderedDict):
        return type(obj)((key, _with_arrays(archive, value)) for key, value in obj.items())
    if type(obj) in (list, tuple):
        return type(obj)(_with_arrays(archive, value) for value in obj)
    return obj


def _tensordict_fields(td: _TensorDictStub) -> tuple[dict, tuple[int, ...]]:
    """(key -> value, batch size) of a TensorDict's pickled state."""
    state = td.state
    if not isinstance(state, dict) or "_tensordict" not in state or "_batch_size" not in state:
        raise _Unsupported(f"unsupported {td.qualname} layout (state keys: "
                           f"{sorted(state) if isinstance(state, dict) else type(state).__name__})")
    return dict(state["_tensordict"]), tuple(int(n) for n in state["_batch_size"])


def _tensordict_arrays(archive: _Archive, root: Any) -> dict[str, np.ndarray]:
    if not isinstance(root, _TensorDictStub):
        raise _Unsupported(f"holds a {type(root).__name__}, not a TensorDict")
    fields, batch = _tensordict_fields(root)
    arrays = {}
    for key, value in fields.items():
        if isinstance(value, dict):
            raise _Unsupported(f"key {key!r} is a nested TensorDict; only flat TensorDicts of tensors are read")
        if not isinstance(value, _TensorRef):
            raise _Unsupported(f"key {key!r} holds a {type(value).__name__}, not a tensor")
        array = _view(archive, value)
        if array.shape[: len(batch)] != batch:
            raise _Unsupported(f"key {key!r} has shape {array.shape}, outside the batch shape {batch}")
        arrays[key] = array
    return arrays


def _read(path: str | os.PathLike, unpickler: type[_Unpickler], build) -> Any:
    """build(archive, unpickled object) of the archive at `path`; every failure a one-line ValueError."""
    path = os.fspath(path)
    try:
        archive = _Archive(path)
        with archive.zip:
            return build(archive, archive.unpickle(unpickler))
    except _Unsupported as error:
        raise ValueError(f"{path}: {error}") from None
    except RecursionError:
        raise ValueError(f"{path}: cannot read it: containers nested too deeply") from None
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path}: cannot read it: a damaged zip archive ({error})") from None
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror or error})") from None


def load(path: str | os.PathLike) -> Any:
    """The object a `torch.save` archive holds, each tensor a read-only array mapped from the file.

    Tensors of any shape, strides and storage offset (float32/64, float16, bfloat16, int8-64, uint8,
    bool, complex) are read inside plain containers: dict, OrderedDict, list, tuple, set, str, numbers,
    None. Anything else the pickle names is refused before it runs: a ValueError "PATH: reason".
    """
    return _read(path, _Unpickler, _with_arrays)


def read_chunk(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of one chunk, {key: array of shape [*batch, ...]}, memory-mapped from the file.

    The chunk is a `torch.save` archive of a flat TensorDict of tensors; arrays keep the TensorDict's
    batch shape as their leading dims (for the official data [episodes, rows]) and its dtypes.
    Anything else (another object, a nested TensorDict, an unknown class) is a ValueError naming the file.
    """
    return _read(path, _ChunkUnpickler, _tensordict_arrays)
