"""Atomic file writes: a temporary file in the same folder, fsync, then rename over the target.

The rename replaces a symbolic link at the target, it never writes through one. For the files of a run
or job folder, which may come from someone else, `inside` refuses a path with a link on the way and
`open_nofollow` opens a file for reading, appending or truncating only when it is not a link.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sensorium.runtime.errors import DataError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()


def _tmp_name(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, _MODE)  # mkstemp makes 0600 files; give the result the usual permissions
    os.close(fd)
    return Path(name)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` so readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write `obj` as indented JSON."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path` for a writer that wants a file name (e.g. `model.save`).

    On success the temporary file or folder is renamed to `path`; on failure it is removed and `path`
    is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp{os.getpid()}.{path.name}"  # keeps compound suffixes (.weights.h5)
    _remove(tmp)
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            old = path.parent / f".{path.name}.{os.getpid()}.old"
            _remove(old)
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


# === Files inside a run or job folder ===
def _link_error(path: Path) -> DataError:
    return DataError(f"{path} is a symbolic link; files inside a run or job folder are not written through "
                     "links (remove the link)")


def inside(root: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """`root/relative` once no existing part of it below `root` (folders on the way and the file itself)
    is a symbolic link; a DataError naming the link otherwise. `root` itself may be one: the user named it."""
    root, rel = Path(root), Path(relative)
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"{relative!r} is not a path inside a folder")
    path = root
    for part in rel.parts:
        path = path / part
        if path.is_symlink():
            raise _link_error(path)
    return path


_OPEN_FLAGS = {"rb": os.O_RDONLY, "r+b": os.O_RDWR, "ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT,
               "a": os.O_WRONLY | os.O_APPEND | os.O_CREAT}


def open_nofollow(path: str | os.PathLike, mode: str, *, encoding: str = "utf-8") -> IO[Any]:
    """`open(path, mode)` for mode rb, r+b, ab or a (text), refusing a symbolic link at `path` (O_NOFOLLOW:
    no window between a check and the open) with a DataError naming it."""
    path = Path(path)
    flags = _OPEN_FLAGS[mode] | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    if not hasattr(os, "O_NOFOLLOW") and path.is_symlink():  # Windows: check, then open
        raise _link_error(path)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) and path.is_symlink():
            raise _link_error(path) from None
        raise
    return os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": encoding}))
