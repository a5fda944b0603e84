"""Writes legacy (pre-1.6) PyTorch checkpoints by hand, without torch, for the reader's and set-up tests.

    write_checkpoint(path, {"w": np.ones((2, 3), np.float32)})
    write_checkpoint(path, {"w": Strided(storage, offset=2, size=(3, 2), stride=(1, 3))})   # a view

A value is an array (its own contiguous storage) or a `Strided` view into a `Storage` that several
tensors may share. `extra` adds raw objects to the state dict (e.g. `Global("os", "system")`).
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_TYPES = {np.dtype("float32"): "FloatStorage", np.dtype("float64"): "DoubleStorage",
                 np.dtype("float16"): "HalfStorage", np.dtype("int64"): "LongStorage", np.dtype("int32"): "IntStorage",
                 np.dtype("int16"): "ShortStorage", np.dtype("int8"): "CharStorage", np.dtype("uint8"): "ByteStorage",
                 np.dtype("bool"): "BoolStorage"}


class Global:
    """A reference to `module.name`, pickled as a GLOBAL opcode (the module need not exist here)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any) -> None:  # pickle wants reduce functions to be callable
        raise AssertionError("never called")


@dataclass(eq=False)
class Storage:
    data: np.ndarray  # 1-D
    key: str = ""
    view: tuple[str, int, int] | None = None  # view_metadata (view key, offset, size)
    numel: int | None = None  # the element count its persistent id claims (default: the data's)


@dataclass(eq=False)
class Strided:
    storage: Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


@dataclass(eq=False)
class Reduce:
    """Pickles as func(*args)."""

    func: Any
    args: tuple = field(default_factory=tuple)

    def __reduce__(self):
        return self.func, self.args


class _Pickler(pickle._Pickler):
    dispatch = pickle._Pickler.dispatch.copy()

    def save_marker(self, obj: Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[Global] = save_marker

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Storage):
            kind = Global("torch", STORAGE_TYPES[obj.data.dtype])
            return ("storage", kind, obj.key, "cpu", int(obj.data.size if obj.numel is None else obj.numel), obj.view)
        return None


def _dump(obj: Any) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def dump(obj: Any) -> bytes:
    """One protocol-2 pickle of `obj` (Global markers as GLOBAL opcodes)."""
    return _dump(obj)


def header_bytes(magic: Any = MAGIC, protocol: Any = 1001) -> bytes:
    """The three pickles before the state dict: magic number, protocol version, system info."""
    return _dump(magic) + _dump(protocol) + _dump(
        {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}})


def checkpoint_bytes(tensors: dict[str, Any], *, extra: dict[str, Any] | None = None, magic: Any = MAGIC,
                     protocol: Any = 1001, counts: dict[str, int] | None = None,
                     keys: list[str] | None = None) -> bytes:
    """The bytes of a legacy checkpoint of `tensors`; `counts` overrides a storage's element count in the
    data section, `keys` the storage key list (to write lying files)."""
    storages: dict[str, Storage] = {}
    state: collections.OrderedDict[str, Any] = collections.OrderedDict()
    rebuild = Global("torch._utils", "_rebuild_tensor_v2")
    for name, value in tensors.items():
        if isinstance(value, np.ndarray):
            value = Strided(Storage(value.reshape(-1).copy()), 0, value.shape,
                            tuple(s // value.itemsize for s in value.copy(order="C").strides))
        storage = value.storage
        if not storage.key:
            storage.key = str(1000 + len(storages))
        storages.setdefault(storage.key, storage)
        state[name] = Reduce(rebuild, (storage, value.offset, tuple(value.size), tuple(value.stride), False,
                                       Reduce(Global("collections", "OrderedDict"))))
    state.update(extra or {})
    # an OrderedDict pickles as torch's does: GLOBAL collections.OrderedDict, then SETITEMS
    out = [header_bytes(magic, protocol), _dump(state)]
    order = keys if keys is not None else list(storages)
    out.append(_dump(order))
    for key in order:
        storage = storages[key]
        count = (counts or {}).get(key, storage.data.size)
        out.append(struct.pack("<q", count) + storage.data.astype(storage.data.dtype.newbyteorder("<")).tobytes())
    return b"".join(out)


def write_checkpoint(path: Path, tensors: dict[str, Any], **kwargs: Any) -> Path:
    Path(path).write_bytes(checkpoint_bytes(tensors, **kwargs))
    return Path(path)
