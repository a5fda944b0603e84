"""The image task's export adapter: model, labels, input spec, calibration and parity data."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.artifacts import Artifact, load_keras, run_config
from sensorium.runtime.errors import DataError, ModelError


@dataclass
class ImageExportSource:
    """What exporting an image classifier needs, read from a run directory or a .keras file."""

    artifact: Artifact
    model: Any
    labels: list[str]
    image_size: tuple[int, int]
    min_side: int = 0  # the smallest input side the model accepts (pretrained backbones: 32)

    task = "image"

    @classmethod
    def load(cls, artifact: Artifact) -> ImageExportSource:
        from sensorium.models.blocks import read_task_metadata

        model = load_keras(artifact.keras_path)
        meta = read_task_metadata(model) or {}
        labels = artifact.labels or meta.get("labels")
        if not labels:
            raise ModelError(f"{artifact.path}: the model carries no class labels")
        size = tuple(meta.get("info", {}).get("image_size") or ())
        if len(size) != 2:
            raise ModelError(f"{artifact.path}: the model does not record its image size")
        return cls(artifact, model, list(labels), (int(size[0]), int(size[1])),
                   int(meta.get("info", {}).get("min_side") or 0))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.image_size[0], self.image_size[1], 3)

    def manifest(self, fmt: str, variant: str, version: str) -> dict[str, Any]:
        """sensorium.json carried inside the exported file."""
        return {
            "task": "image", "format": fmt, "variant": variant, "sensorium_version": version,
            "labels": self.labels,
            "input": {"name": "pixels", "dtype": "uint8", "shape": [None, *self.input_shape], "color": "RGB",
                      "image_size": list(self.image_size), **({"min_side": self.min_side} if self.min_side else {}),
                      "normalisation": "inside the model (pixels / 255, grayscale if the model is)"},
            "output": {"name": "probabilities", "dtype": "float32", "shape": [None, len(self.labels)],
                       "meaning": "softmax probabilities in labels.txt order"},
        }

    def _data_config(self):
        from sensorium.pipelines.image.config import DataConfig, ImageClassificationConfig

        cfg = run_config(self.artifact, ImageClassificationConfig)
        return (cfg.data, cfg.seed) if cfg is not None else (DataConfig(), 42)

    def load_images(self, spec: str | None, default_split: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(uint8 (N, H, W, 3) at the model's size, labels or None) from a data spec or a .npy file."""
        from sensorium.pipelines.image.data import load_split

        if spec and spec.endswith(".npy"):
            try:
                x = np.load(spec, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise DataError(f"{spec}: unreadable .npy ({exc})") from None
            if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
                raise DataError(f"{spec}: calibration data has shape {tuple(x.shape)}; this model needs "
                                f"(N, {', '.join(map(str, self.input_shape))}) uint8 pixels")
            return x.astype(np.uint8), None
        data_cfg, seed = self._data_config()
        spec = spec or data_cfg.spec
        split = load_split(spec, data_cfg, seed=seed, image_size=self.image_size, default_split=default_split,
                           label_names=self.labels)
        if split.x is not None:
            return self._at_model_size(split.x), split.y
        xs, ys = zip(*split.dataset(256).as_numpy_iterator())
        return self._at_model_size(np.concatenate(xs)), np.concatenate(ys)

    def _at_model_size(self, x: np.ndarray) -> np.ndarray:
        """In-memory sources keep their native size (the Keras model resizes inside); exported TFLite
        files take the model's fixed size, so resize here the way the model does (bilinear)."""
        if tuple(x.shape[1:3]) == self.image_size:
            return x
        import tensorflow as tf

        out = [tf.image.resize(x[i : i + 512], self.image_size, method="bilinear") for i in range(0, len(x), 512)]
        return np.clip(np.round(np.concatenate([o.numpy() for o in out])), 0, 255).astype(np.uint8)

    def keras_fn(self):
        import tensorflow as tf

        fn = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        return lambda x: fn(tf.constant(x)).numpy()

    def write_saved_model(self, out: Path, version: str) -> Path:
        from sensorium.export.saved_model import export_image_saved_model

        return export_image_saved_model(self.model, out, labels=self.labels, image_size=self.image_size,
                                        extra={"sensorium_version": version})
