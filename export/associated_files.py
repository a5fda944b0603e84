"""Associated files inside a `.tflite`: a zip archive appended to the flatbuffer.

This is how the TFLite metadata format packs labels and other files (the official metadata populator
opens the model with `zipfile.ZipFile(path, "a")` and stores the files uncompressed), so Android's
`MetadataExtractor.getAssociatedFile(name)` and our edge runner read them back. The flatbuffer itself
is untouched: interpreters ignore the trailing archive. No TensorFlow is imported here.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

MANIFEST_NAME = "sensorium.json"


class AssociatedFilesError(ValueError):
    """The model's associated files are missing or unreadable."""


def pack(model_bytes: bytes, files: dict[str, bytes]) -> bytes:
    """Return `model_bytes` with `files` appended as a stored (uncompressed) zip archive."""
    if has_files(model_bytes):
        raise AssociatedFilesError("the model already carries associated files")
    buf = io.BytesIO(model_bytes)
    buf.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buf, mode="a", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # reproducible bytes
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, files[name])
    return buf.getvalue()


def has_files(model_bytes: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as zf:
            return bool(zf.namelist())
    except zipfile.BadZipFile:
        return False


def read_all(model: bytes | str | Path) -> dict[str, bytes]:
    """Every associated file of a `.tflite` (path or bytes) -> {name: bytes}; {} when there are none."""
    data = Path(model).read_bytes() if not isinstance(model, (bytes, bytearray)) else bytes(model)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return {name: zf.read(name) for name in zf.namelist()}
    except zipfile.BadZipFile:
        return {}
    except (zipfile.LargeZipFile, OSError, KeyError) as exc:
        raise AssociatedFilesError(f"unreadable associated files ({exc})") from None


def read_manifest(files: dict[str, bytes]) -> dict[str, Any]:
    """The `sensorium.json` among associated files, parsed."""
    if MANIFEST_NAME not in files:
        raise AssociatedFilesError(f"no {MANIFEST_NAME} among the model's associated files")
    try:
        return json.loads(files[MANIFEST_NAME].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise AssociatedFilesError(f"{MANIFEST_NAME} is not valid JSON ({exc})") from None


def flatbuffer_part(model_bytes: bytes) -> bytes:
    """The model without its appended archive (what the interpreter actually reads)."""
    try:
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as zf:
            first = min((i.header_offset for i in zf.infolist()), default=None)
            start = getattr(zf, "_start_disk", 0)
    except zipfile.BadZipFile:
        return model_bytes
    if first is None:
        return model_bytes
    return model_bytes[: start + first] if start else model_bytes[:first]
