"""Inputs named by paths: files, folders and glob patterns expanded in order, and files opened with
one-line errors for what cannot be read."""
from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from sensorium.runtime.errors import DataError


def expand_paths(inputs: Iterable[str], accept: Callable[[Path], bool]) -> list[str]:
    """Files, folders (recursively, accepted files only, sorted, hidden ones skipped) and glob patterns
    -> a list of inputs. Inputs that match nothing stay in the list so they are reported as failures
    in order."""
    out: list[str] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and accept(f)
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            out.extend(found if found else [item])
        elif not p.exists() and glob.has_magic(item):
            matches = sorted(glob.glob(os.path.expanduser(item), recursive=True))
            out.extend(matches if matches else [item])
        else:
            out.append(item)
    return out


def input_error(item: str, wanted: str) -> str | None:
    """The one-line error for an input that is a folder without `wanted` files or does not exist."""
    p = Path(item)
    if p.is_dir():
        return f"{item}: folder holds no {wanted}"
    if not p.exists():
        return f"{item}: no such file" + (" (the pattern matched nothing)" if glob.has_magic(item) else "")
    return None


def open_input(path: str | Path, *, folder: str, error: type[DataError] = DataError) -> BinaryIO:
    """`path` opened for binary reading; a missing file, a folder (`folder` says what was expected)
    or an unreadable one is a one-line `error` naming it."""
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, {folder}") from None
    except OSError as exc:
        raise error(f"{path}: cannot open ({exc.strerror or exc})") from None


def read_capped(path: str | Path, limit: int, what: str, *, error: type[DataError] = DataError) -> bytes:
    """The bytes of the file at `path` (`what` names it in errors); a one-line `error` when it cannot be
    read or holds more than `limit` bytes (no more than limit + 1 are read)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise error(f"{path}: {what} is over {limit:,} bytes")
    return data
