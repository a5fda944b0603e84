"""SavedModel export of an image classifier with raw-input signatures.

Signatures:
- `serving_default(pixels: uint8 (B, H, W, 3)) -> {"probabilities": float32 (B, C)}`: any H and W;
  resizing and normalisation happen inside the graph.
- `serving_bytes(images: string (B,)) -> {"probabilities": float32 (B, C)}`: encoded PNG / JPEG /
  BMP / GIF bytes, decoded and resized in the graph.
`assets/sensorium.json` (task, labels, input spec, version) and `assets/labels.txt` travel with it.
"""
from __future__ import annotations

import json
import logging
from importlib import metadata
from pathlib import Path
from typing import Any

from sensorium.runtime.atomic import atomic_path

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return metadata.version("sensorium")
    except metadata.PackageNotFoundError:
        return "unknown"


def export_image_saved_model(model: Any, out: str | Path, *, labels: list[str], image_size: tuple[int, int],
                             extra: dict[str, Any] | None = None) -> Path:
    """Write `model` (uint8 pixels -> probabilities) as a SavedModel folder at `out`, atomically."""
    import keras
    import tensorflow as tf

    height, width = int(image_size[0]), int(image_size[1])

    def serve_pixels(pixels):
        return {"probabilities": model(pixels, training=False)}

    def decode_one(data):
        img = tf.io.decode_image(data, channels=3, expand_animations=False)  # (h, w, 3) uint8
        img = tf.image.resize(img, (height, width))
        return tf.cast(tf.round(tf.clip_by_value(img, 0.0, 255.0)), tf.uint8)

    def serve_bytes(images):
        pixels = tf.map_fn(decode_one, images, fn_output_signature=tf.TensorSpec((height, width, 3), tf.uint8))
        return {"probabilities": model(pixels, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", tf.function(serve_pixels),
                         input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8, name="pixels")])
    archive.add_endpoint("serving_bytes", tf.function(serve_bytes),
                         input_signature=[tf.TensorSpec((None,), tf.string, name="images")])
    meta = {"task": "image", "format": "saved_model", "sensorium_version": _version(), "labels": labels,
            "input": {"name": "pixels", "dtype": "uint8", "shape": [None, None, None, 3], "color": "RGB",
                      "image_size": [height, width], "normalisation": "inside the model"},
            "output": {"name": "probabilities", "dtype": "float32", "shape": [None, len(labels)]},
            "signatures": ["serving_default", "serving_bytes"], **(extra or {})}
    out = Path(out)
    with atomic_path(out) as tmp:
        archive.write_out(str(tmp), verbose=False)
        assets = tmp / "assets"
        assets.mkdir(exist_ok=True)
        (assets / "sensorium.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        (assets / "labels.txt").write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
    log.info("SavedModel written to %s", out)
    return out
