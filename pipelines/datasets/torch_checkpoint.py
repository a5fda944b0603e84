"""A restricted reader of legacy (pre-1.6) PyTorch checkpoints holding a state dict, without torch.

The legacy format (`torch.save(..., _use_new_zipfile_serialization=False)`, the only one before 1.6)
is a sequence of pickles followed by raw storage data:

    pickle(MAGIC)  pickle(PROTOCOL_VERSION)  pickle(sys info dict)
    pickle(state dict)       tensors are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
                             requires_grad, backward_hooks)`; each storage is a persistent id
                             `("storage", torch.FloatStorage, key, location, numel[, view_metadata])`
    pickle([storage keys])   the order of the storages below
    for each key: int64 element count (little-endian), then the storage's raw little-endian data

Nothing in the file is trusted: the unpicklers resolve only the globals a state dict needs
(`ALLOWED_GLOBALS`; any other global is refused by name, before anything is called), every count,
offset, size and stride is checked against the bytes the file really holds (a truncated or lying
file is one `DataError`, never a large allocation), and the tensors are copied out as numpy arrays.

    state = read_state_dict(Path("model.pth"))      # {"_conv_stem.weight": np.ndarray (32, 3, 3, 3), ...}
"""
from __future__ import annotations

import collections
import io
import math
import pickle
import struct
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from sensorium.runtime.errors import DataError

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
MAX_CHECKPOINT_BYTES = 1 << 30  # a path is refused over this size (the EfficientNet-Lite ones are ~25 MB)
MAX_TENSORS = 100_000
# torch storage classes -> the little-endian numpy dtype of their elements
STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "LongStorage": "<i8",
    "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2")}
    | {("torch", name) for name in STORAGE_DTYPES}
)


# The unpickled stand-ins are named tuples: immutable, without __dict__ or __setstate__, so a pickle's
# BUILD opcode cannot change them after they were checked.
class _StorageType(NamedTuple):
    """What `torch.FloatStorage` etc. unpickle to: a marker carrying the element dtype (never called)."""

    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(STORAGE_DTYPES[self.name])


class _Storage(NamedTuple):
    """A persistent id: storage `key` of `numel` elements (`offset`/`numel` of a view into it)."""

    key: str
    storage_type: _StorageType
    numel: int  # of the root storage
    view_offset: int = 0
    view_numel: int | None = None


class _Tensor(NamedTuple):
    """What `_rebuild_tensor_v2` unpickles to: where a tensor's elements lie, materialised later."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(_is_int(v) and v >= 0 for v in value):
        raise pickle.UnpicklingError(f"{what} must be a tuple of non-negative integers, got {value!r:.80}")
    return tuple(int(v) for v in value)


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, *rest: Any) -> _Tensor:
    """The allowed stand-in for `torch._utils._rebuild_tensor_v2`: records, checks types, computes nothing big."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor without a storage persistent id")
    if not _is_int(storage_offset) or storage_offset < 0:
        raise pickle.UnpicklingError(f"tensor storage offset {storage_offset!r:.40} is not a non-negative integer")
    if len(rest) > 3:  # requires_grad, backward_hooks[, metadata]
        raise pickle.UnpicklingError(f"_rebuild_tensor_v2 takes at most 7 arguments, got {4 + len(rest)}")
    size_t, stride_t = _int_tuple(size, "tensor size"), _int_tuple(stride, "tensor stride")
    if len(size_t) != len(stride_t):
        raise pickle.UnpicklingError(f"tensor size {size_t} and stride {stride_t} differ in length")
    return _Tensor(storage, int(storage_offset), size_t, stride_t)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only `allowed` globals; persistent ids only when `storages` is a dict to fill."""

    def __init__(self, file: io.BytesIO, allowed: frozenset[tuple[str, str]],
                 storages: dict[str, _Storage] | None = None) -> None:
        super().__init__(file)
        self.allowed = allowed
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.allowed:
            raise _Refused(f"{module}.{name}")
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        return _StorageType(name)

    def persistent_load(self, pid: Any) -> _Storage:
        if self.storages is None:
            raise pickle.UnpicklingError("a persistent id outside the state dict")
        if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80} (expected a storage)")
        _, storage_type, key, _location, numel, *view = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not _is_int(numel) or numel < 0:
            raise pickle.UnpicklingError(f"malformed storage persistent id {pid!r:.80}")
        known = self.storages.setdefault(key, _Storage(key, storage_type, int(numel)))
        if (known.storage_type, known.numel) != (storage_type, numel):
            raise pickle.UnpicklingError(f"storage {key} is declared twice with different types or sizes")
        metadata = view[0] if view else None
        if metadata is None:
            return known
        if (not isinstance(metadata, tuple) or len(metadata) != 3 or not all(_is_int(v) for v in metadata[1:])
                or metadata[1] < 0 or metadata[2] < 0 or metadata[1] + metadata[2] > numel):
            raise pickle.UnpicklingError(f"storage {key}: malformed view {metadata!r:.80}")
        return _Storage(key, storage_type, int(numel), int(metadata[1]), int(metadata[2]))


class _Refused(pickle.UnpicklingError):
    """A global outside the allow-list (its message is the global's dotted name)."""


def _unpickle(stream: io.BytesIO, what: str, label: str, *, allowed: frozenset[tuple[str, str]] = frozenset(),
              storages: dict[str, _Storage] | None = None) -> Any:
    try:
        return _RestrictedUnpickler(stream, allowed, storages).load()
    except _Refused as exc:
        raise DataError(f"{label}: refusing the global {exc} in the checkpoint's {what} (a state dict needs only "
                        "collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage)") from None
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            MemoryError, RecursionError, struct.error, UnicodeDecodeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise DataError(f"{label}: not a readable legacy torch checkpoint ({what}: {first})") from None


def read_state_dict(source: bytes | bytearray | memoryview | str | Path, *, label: str | None = None,
                    max_bytes: int = MAX_CHECKPOINT_BYTES) -> dict[str, np.ndarray]:
    """`{name: np.ndarray}` of the legacy torch checkpoint `source` (its bytes or a path); one-line DataErrors.

    `label` names the checkpoint in messages (default: the path). A path larger than `max_bytes` is
    refused before it is read."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        label = label or str(path)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise DataError(f"{label}: {size:,} bytes is over the checkpoint limit of {max_bytes:,}")
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{label}: cannot read the checkpoint ({exc.strerror or exc})") from None
    else:
        data = bytes(source)
        label = label or "checkpoint"
    return _read(data, label)


def _read(data: bytes, label: str) -> dict[str, np.ndarray]:
    if data[:2] == b"PK":
        raise DataError(f"{label}: a zip-format (torch >= 1.6) checkpoint; only the legacy format is supported")
    stream = io.BytesIO(data)
    magic = _unpickle(stream, "magic number", label)
    if not _is_int(magic) or magic != MAGIC:
        raise DataError(f"{label}: not a legacy torch checkpoint (wrong magic number)")
    protocol = _unpickle(stream, "protocol version", label)
    if not _is_int(protocol) or protocol != PROTOCOL_VERSION:
        raise DataError(f"{label}: unsupported torch checkpoint protocol {protocol!r:.40} "
                        f"(expected {PROTOCOL_VERSION})")
    sys_info = _unpickle(stream, "system info", label)
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise DataError(f"{label}: the checkpoint was not written on a little-endian machine (or has no system "
                        "info); not supported")
    storages: dict[str, _Storage] = {}
    state = _unpickle(stream, "state dict", label, allowed=ALLOWED_GLOBALS, storages=storages)
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, _Tensor) for k, v in state.items()):
        raise DataError(f"{label}: the checkpoint holds no state dict (a mapping of names to tensors)")
    if len(state) > MAX_TENSORS:
        raise DataError(f"{label}: {len(state):,} tensors is over the limit of {MAX_TENSORS:,}")
    keys = _unpickle(stream, "storage key list", label)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or len(set(keys)) != len(keys):
        raise DataError(f"{label}: malformed storage key list")
    if set(keys) != set(storages):
        missing = sorted(set(storages) - set(keys)) or sorted(set(keys) - set(storages))
        raise DataError(f"{label}: the storage key list does not match the tensors' storages (e.g. {missing[0]})")
    buffers = _storage_buffers(data, stream.tell(), keys, storages, label)
    return {name: _materialise(name, tensor, buffers[tensor.storage.key], label) for name, tensor in state.items()}


def _storage_buffers(data: bytes, position: int, keys: list[str], storages: dict[str, _Storage],
                     label: str) -> dict[str, np.ndarray]:
    """Each storage's elements as a read-only numpy view into `data`, in `keys` order, every count checked."""
    view = memoryview(data)
    buffers: dict[str, np.ndarray] = {}
    for key in keys:
        storage = storages[key]
        if position + 8 > len(data):
            raise DataError(f"{label}: truncated checkpoint (storage {key} is missing)")
        (count,) = struct.unpack_from("<q", data, position)
        position += 8
        if count != storage.numel:
            raise DataError(f"{label}: storage {key} holds {count} elements, its tensors say {storage.numel}")
        nbytes = count * storage.storage_type.dtype.itemsize
        if position + nbytes > len(data):
            raise DataError(f"{label}: truncated checkpoint (storage {key} needs {nbytes:,} bytes, "
                            f"{len(data) - position:,} left)")
        buffers[key] = np.frombuffer(view[position:position + nbytes], dtype=storage.storage_type.dtype)
        position += nbytes
    if position != len(data):
        raise DataError(f"{label}: {len(data) - position:,} unexpected bytes after the last storage")
    return buffers


def _materialise(name: str, tensor: _Tensor, buffer: np.ndarray, label: str) -> np.ndarray:
    """Copy `tensor`'s elements out of its storage, honouring the view, the offset and the strides."""
    storage = tensor.storage
    base = storage.view_offset
    limit = storage.numel if storage.view_numel is None else storage.view_offset + storage.view_numel
    elements = math.prod(tensor.size)
    if elements == 0:
        return np.zeros(tensor.size, dtype=buffer.dtype)
    start = base + tensor.offset
    last = start + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride))
    if last >= limit:
        raise DataError(f"{label}: tensor {name} {tensor.size} with strides {tensor.stride} at offset "
                        f"{tensor.offset} reaches past its storage of {limit - base} elements")
    if elements > limit - base:  # overlapping strides (an expanded tensor): never in a state dict
        raise DataError(f"{label}: tensor {name} has {elements:,} elements in a storage of {limit - base:,} "
                        "(overlapping strides are not supported)")
    itemsize = buffer.dtype.itemsize
    strided = np.lib.stride_tricks.as_strided(buffer[start:], shape=tensor.size,
                                              strides=tuple(s * itemsize for s in tensor.stride), writeable=False)
    return np.array(strided, dtype=buffer.dtype.newbyteorder("="), order="C")
