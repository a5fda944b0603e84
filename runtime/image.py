"""The image classifier of the runtime: images in, labels with scores out.

Inputs are image files (paths), encoded image bytes, or uint8 pixel arrays (H, W[, C]); each is decoded
and resized to the model's input size in a thread pool, then predicted in batches. Records:
`{"input", "ok", "label", "score", "top_k": [{"label", "score"}]}`.

Example::

    clf = ImageClassifier.load()               # the bundled digits model, its int8 .tflite
    clf("digit.png")["label"]
"""
from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sensorium.runtime.errors import InputError, ModelError
from sensorium.runtime.predictor import Item, Predictor, Record, error_record, ok_record


@dataclass
class ImageClassifier(Predictor):
    """`predict(uint8 (B, H, W, 3)) -> probabilities (B, C)` with its labels and input size."""

    labels: list[str]
    image_size: tuple[int, int]  # (height, width)
    predict: Callable[[np.ndarray], np.ndarray]
    source: str
    runtime: str = "keras"
    top_k: int = 5
    min_side: int = 0  # smaller inputs are refused item by item (pretrained backbones: 32 px)

    task: ClassVar[str] = "image"
    keras_backend: ClassVar[str] = "sensorium.pipelines.image.predict:load"
    options: ClassVar[dict[str, Any]] = {"top_k": 5}
    chunk_size: ClassVar[int] = 32

    @classmethod
    def from_tflite(cls, path: str | Path, *, num_threads: int | None = None) -> ImageClassifier:
        """A `.tflite` on this runtime (no TensorFlow); labels and input size come from the file."""
        from sensorium.runtime.tflite import EdgeModel

        model = EdgeModel(path, num_threads=num_threads)
        model.require_task(cls.task)
        if not model.labels:
            raise ModelError(f"{path}: no labels inside the model")
        size = tuple(model.manifest.get("input", {}).get("image_size") or model.input["shape"][1:3])
        return cls(list(model.labels), (int(size[0]), int(size[1])), model, str(path), model.runtime,
                   min_side=min_side_of(model.manifest.get("input", {})))

    def configure(self, **options: Any) -> ImageClassifier:
        super().configure(**options)
        if int(self.top_k) < 1:
            from sensorium.runtime.errors import UsageError

            raise UsageError("top_k must be at least 1")
        return self

    def decode(self, item: Item) -> np.ndarray:
        """One input -> uint8 (H, W, 3) at the model's size; InputError for anything unusable."""
        from sensorium.runtime.image_io import image_from_array, load_image

        value = item.value
        if isinstance(value, np.ndarray):
            return image_from_array(value, size=self.image_size, name=f"input {item.name}", min_side=self.min_side)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return load_image(bytes(value), size=self.image_size, min_side=self.min_side)
        if isinstance(value, (str, Path)):
            from sensorium.runtime.paths import input_error

            error = input_error(str(value), "image files (.png, .jpg, .bmp, .gif, ...)")
            if error:
                raise InputError(error)
            return load_image(value, size=self.image_size, min_side=self.min_side)
        raise InputError(f"input {item.name}: expected an image path, encoded bytes or a uint8 array, got "
                         f"{type(value).__name__}")

    def predict_items(self, items: list[Item]) -> list[Record]:
        def decode(item: Item) -> np.ndarray | str:
            if item.error:
                return item.error
            try:
                return self.decode(item)
            except InputError as exc:
                return str(exc)

        workers = max(1, min(8, os.cpu_count() or 2, len(items)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            decoded = list(pool.map(decode, items))
        good = [i for i, d in enumerate(decoded) if isinstance(d, np.ndarray)]
        probs = self.predict(np.stack([decoded[i] for i in good])) if good else None  # (B, C)
        row = {i: r for r, i in enumerate(good)}
        k = max(1, min(int(self.top_k), len(self.labels)))
        out: list[Record] = []
        for i, item in enumerate(items):
            if i not in row:
                out.append(error_record(item, decoded[i]))  # type: ignore[arg-type]
                continue
            p = probs[row[i]]
            order = np.argsort(-p, kind="stable")[:k]
            top = [{"label": self.labels[j], "score": round(float(p[j]), 6)} for j in order]
            out.append(ok_record(item, label=top[0]["label"], score=top[0]["score"], top_k=top))
        return out

    def predict_batches(self, batches: Any) -> np.ndarray:
        """Probabilities for a tf.data dataset (or any iterable) of uint8 batches -> (N, C)."""
        it = batches.as_numpy_iterator() if hasattr(batches, "as_numpy_iterator") else batches
        outs = [self.predict(np.asarray(b)) for b in it]
        return np.concatenate(outs) if outs else np.zeros((0, len(self.labels)), np.float32)


def min_side_of(info: dict[str, Any]) -> int:
    """A model's smallest accepted input side from its metadata (0: any)."""
    value = info.get("min_side", 0)
    return int(value) if isinstance(value, int) and 0 <= value <= 4096 else 0
