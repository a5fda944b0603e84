"""Inference with generative runs: `generate` (VAE / GAN samples from the prior as a PNG grid),
`denoise` (autoencoder / VAE reconstructions as PNGs) and `anomaly` (autoencoder reconstruction-error
scores against the run's calibrated threshold).

`denoise_paths` and `anomaly_paths` never raise for a bad input: each input gets a result dict with
"ok", failures carry a one-line "error" (CONTRACTS.md, JSON output). Images are decoded in a thread
pool and run through the model in batches, like `classify`.

Denoised images are written at the *model's* size and channels (e.g. 28x28 grayscale for MNIST):
that is what the model reconstructs; resizing back to the input's size would only blur it.
"""
from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.generative.modeling import GENERATORS, RECONSTRUCTORS, GenerativeModel, load_generative
from sensorium.runtime.atomic import atomic_write_bytes
from sensorium.runtime.errors import ModelError, UsageError
from sensorium.runtime.image_io import ImageDecodeError, is_image_path, load_image
from sensorium.runtime.paths import expand_paths, input_error

log = logging.getLogger(__name__)

MAX_COUNT = 10_000  # `generate --count` upper bound (a 10,000-image grid of 28x28 is ~3000x3000 pixels)
ANOMALY_TASKS = ("autoencoder",)


# === generate ===
def check_count(count: int) -> int:
    """`count` if 1 <= count <= MAX_COUNT, else a UsageError (exit 2)."""
    if count < 1:
        raise UsageError(f"--count must be at least 1, got {count}")
    if count > MAX_COUNT:
        raise UsageError(f"--count {count} is over the limit of {MAX_COUNT} images per call")
    return count


def load_generator(model: str | Path) -> GenerativeModel:
    """A VAE or GAN run directory / .keras file; one-line ModelError for anything else."""
    return load_generative(model, tasks=GENERATORS)


def generate(model: GenerativeModel, count: int, out: str | Path, *, seed: int = 0,
             columns: int | None = None) -> dict[str, Any]:
    """Decode `count` latent vectors from the model's prior (seeded) and write them as one PNG grid.

    `out` ending in a folder (an existing folder, or a path ending in "/") writes OUT/grid.png and
    each sample as OUT/sample-NNNNN.png; otherwise `out` is the grid file. All files are written
    atomically. Returns {"count", "out", "seed"} (out = the grid's path)."""
    from sensorium.pipelines.generative.images import save_grid, to_pixels

    check_count(count)
    images = model.generate(model.latents(count, seed))  # (N, H, W, C) in [0, 1]
    as_folder = str(out).endswith(("/", os.sep)) or Path(out).is_dir()
    grid_path = Path(out) / "grid.png" if as_folder else Path(out)
    if as_folder:
        pixels = to_pixels(images)  # (N, H, W, 3) uint8
        width = max(5, len(str(count)))
        for i in range(count):
            write_png(Path(out) / f"sample-{i + 1:0{width}d}.png", pixels[i], gray=model.channels == 1)
    save_grid(grid_path, images, columns)
    log.info("wrote %d samples to %s", count, grid_path)
    return {"count": count, "out": str(grid_path), "seed": seed}


def write_png(path: str | Path, pixels: np.ndarray, *, gray: bool = False) -> Path:
    """uint8 RGB (H, W, 3) -> a PNG (8-bit grayscale when `gray`), written atomically."""
    from PIL import Image

    img = Image.fromarray(pixels[..., 0] if gray else pixels, "L" if gray else "RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


# === denoise / anomaly ===
def load_reconstructor(model: str | Path) -> GenerativeModel:
    """An autoencoder or VAE run directory / .keras file, for `denoise`."""
    return load_generative(model, tasks=RECONSTRUCTORS)


def load_anomaly_model(model: str | Path, threshold: float | None = None) -> tuple[GenerativeModel, float]:
    """An autoencoder and its anomaly threshold: `threshold` if given, else RUN_DIR/anomaly.json's, else
    the model metadata's; a ModelError when none is known."""
    loaded = load_generative(model, tasks=ANOMALY_TASKS)
    if threshold is None:
        threshold = run_threshold(loaded)
    if threshold is None:
        raise ModelError(f"{loaded.source}: the model has no calibrated anomaly threshold; pass --threshold X")
    return loaded, float(threshold)


def run_threshold(model: GenerativeModel) -> float | None:
    """The threshold stored with the run (anomaly.json) or, failing that, in the model's metadata."""
    import json

    from sensorium.pipelines.generative.train import ANOMALY_FILE

    if model.run_path is not None and (model.run_path / ANOMALY_FILE).is_file():
        try:
            value = json.loads((model.run_path / ANOMALY_FILE).read_text(encoding="utf-8")).get("threshold")
        except (OSError, ValueError, AttributeError) as exc:
            raise ModelError(f"{model.run_path / ANOMALY_FILE}: unreadable ({exc})") from None
        if value is not None:
            return float(value)
    return model.anomaly_threshold


def expand_inputs(inputs: Iterable[str]) -> list[str]:
    """Files, folders (image files inside) and glob patterns -> inputs (see common.inputs)."""
    return expand_paths(inputs, is_image_path)


def _decode(item: str, size: tuple[int, int]) -> np.ndarray | str:
    """uint8 RGB (H, W, 3) pixels of `item` resized to `size` (bilinear), or its one-line error."""
    error = input_error(item, "image files (.png, .jpg, .bmp, .gif, ...)")
    if error:
        return error
    try:
        return load_image(item, size=size)
    except ImageDecodeError as exc:
        return str(exc)


def _batches(model: GenerativeModel, items: list[str],
             batch_size: int) -> Iterator[tuple[list[str], list[np.ndarray | str], np.ndarray | None]]:
    """Per chunk of `batch_size` expanded inputs, in order: (items, pixels-or-error per item, the good
    items' pixels stacked (N, H, W, 3) or None). Images are resized to the model's size on decoding
    (bilinear, as the model's own preprocessing would), so that any sizes stack into one batch."""
    size = model.image_size
    with ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2))) as pool:
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            decoded = list(pool.map(lambda item: _decode(item, size), chunk))
            good = [d for d in decoded if isinstance(d, np.ndarray)]
            yield chunk, decoded, (np.stack(good) if good else None)


def output_names(items: list[str]) -> list[str]:
    """`<stem>.png` per input; repeated stems (a/x.png, b/x.jpg) get -2, -3, ... in input order."""
    seen: dict[str, int] = {}
    names = []
    for item in items:
        stem = Path(item).stem or "image"
        n = seen.get(stem, 0) + 1
        seen[stem] = n
        names.append(f"{stem}.png" if n == 1 else f"{stem}-{n}.png")
    return names


def denoise_paths(model: GenerativeModel, inputs: Iterable[str], out_dir: str | Path, *,
                  batch_size: int = 32) -> Iterator[dict[str, Any]]:
    """Yield one result per input, in order: {"input", "ok", "output"} with the reconstruction written
    to OUT_DIR/<stem>.png at the model's size (grayscale for a 1-channel model), or the input's error."""
    from sensorium.pipelines.generative.images import to_pixels

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file; it must be a folder")
    items = expand_inputs(inputs)
    names = dict(zip(range(len(items)), output_names(items)))
    index = 0
    for chunk, decoded, pixels in _batches(model, items, batch_size):
        recon = to_pixels(model.reconstruct(pixels, batch_size)) if pixels is not None else None
        row = 0
        for item, d in zip(chunk, decoded):
            name = names[index]
            index += 1
            if isinstance(d, str):
                yield {"input": item, "ok": False, "error": d}
                continue
            path = write_png(out_dir / name, recon[row], gray=model.channels == 1)
            row += 1
            yield {"input": item, "ok": True, "output": str(path)}


def anomaly_paths(model: GenerativeModel, threshold: float, inputs: Iterable[str], *,
                  batch_size: int = 32) -> Iterator[dict[str, Any]]:
    """Yield one result per input, in order: {"input", "ok", "score", "anomalous", "threshold"}
    (score = per-image reconstruction MSE, anomalous = score > threshold), or the input's error."""
    for chunk, decoded, pixels in _batches(model, expand_inputs(inputs), batch_size):
        scores = model.errors(pixels, batch_size) if pixels is not None else None
        row = 0
        for item, d in zip(chunk, decoded):
            if isinstance(d, str):
                yield {"input": item, "ok": False, "error": d}
                continue
            score = float(scores[row])
            row += 1
            yield {"input": item, "ok": True, "score": round(score, 8), "anomalous": bool(score > threshold),
                   "threshold": round(float(threshold), 8)}
