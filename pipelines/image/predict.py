"""Classify images with any image artifact: a run directory, a `.keras` file or a SavedModel.

`classify_paths` never raises for a bad input: each input gets a result dict with "ok", and failures
carry a one-line "error" (CONTRACTS.md, JSON output).
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from sensorium.runtime.paths import expand_paths, input_error
from sensorium.pipelines.common.artifacts import Artifact, inspect_artifact, load_keras, require_task
from sensorium.runtime.errors import ModelError
from sensorium.runtime.image_io import ImageDecodeError, is_image_path, load_image

log = logging.getLogger(__name__)

TASK = "image"


@dataclass
class ImageClassifier:
    """A loaded image model: `predict(uint8 (B, H, W, 3)) -> probabilities (B, C)`."""

    labels: list[str]
    image_size: tuple[int, int]
    predict: Callable[[np.ndarray], np.ndarray]
    source: str

    @classmethod
    def from_artifact(cls, artifact: Artifact | str | Path) -> "ImageClassifier":
        if not isinstance(artifact, Artifact):
            artifact = inspect_artifact(artifact)
        require_task(artifact, TASK)
        if artifact.kind in ("run", "keras"):
            return cls._from_keras(artifact)
        if artifact.kind == "saved_model":
            return cls._from_saved_model(artifact)
        if artifact.kind == "tflite":
            return cls.from_tflite(artifact.path)
        raise ModelError(f"{artifact.path}: unsupported model kind {artifact.kind}")

    @classmethod
    def from_tflite(cls, path: str | Path, *, num_threads: int | None = None) -> "ImageClassifier":
        """A `.tflite` run by the edge runner (no TensorFlow), labels and input spec read from the file."""
        from sensorium.runtime.tflite import EdgeModel

        path = Path(path)
        if path.is_dir():
            raise ModelError(f"{path}: the edge runtime takes a .tflite file")
        model = EdgeModel(path, num_threads=num_threads)
        if model.task != TASK:
            what = f"a '{model.task}' model" if model.task else "not a Sensorium model (no sensorium.json inside)"
            raise ModelError(f"{path} is {what}, not '{TASK}'")
        if not model.labels:
            raise ModelError(f"{path}: no labels inside the model")
        size = tuple(model.manifest.get("input", {}).get("image_size") or model.input["shape"][1:3])
        return cls(list(model.labels), (int(size[0]), int(size[1])), model, str(path))

    @classmethod
    def _from_keras(cls, artifact: Artifact) -> "ImageClassifier":
        import tensorflow as tf

        from sensorium.models.blocks import read_task_metadata

        model = load_keras(artifact.keras_path)
        meta = read_task_metadata(model)
        if meta is None:
            raise ModelError(f"{artifact.path}: this .keras model carries no Sensorium task metadata")
        if meta["task"] != TASK:
            raise ModelError(f"{artifact.path} is a '{meta['task']}' model, not '{TASK}'")
        labels = artifact.labels or meta.get("labels")
        if not labels:
            raise ModelError(f"{artifact.path}: the model carries no class labels")
        size = tuple(meta.get("info", {}).get("image_size") or (224, 224))
        fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                         input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8)])
        return cls(list(labels), (int(size[0]), int(size[1])), lambda x: fn(x).numpy(), str(artifact.path))

    @classmethod
    def _from_saved_model(cls, artifact: Artifact) -> "ImageClassifier":
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(str(artifact.path))
        except Exception as exc:
            raise ModelError(f"{artifact.path}: cannot load the SavedModel ({str(exc).splitlines()[0][:200]})") from None
        fn = loaded.signatures.get("serving_default")
        if fn is None:
            raise ModelError(f"{artifact.path}: the SavedModel has no serving_default signature")
        if not artifact.labels:
            raise ModelError(f"{artifact.path}: the SavedModel carries no labels (assets/labels.txt)")
        size = tuple(artifact.info.get("input", {}).get("image_size") or artifact.info.get("image_size") or (224, 224))
        (in_name, in_spec), = fn.structured_input_signature[1].items()
        out_name = next(iter(fn.structured_outputs))

        def run(x: np.ndarray) -> np.ndarray:
            return fn(**{in_name: tf.constant(x, in_spec.dtype)})[out_name].numpy()

        return cls(list(artifact.labels), (int(size[0]), int(size[1])), run, str(artifact.path))

    def predict_batches(self, batches: Iterable[Any]) -> np.ndarray:
        """Probabilities for a tf.data dataset (or any iterable) of uint8 batches -> (N, C)."""
        outs = [self.predict(np.asarray(b)) for b in (batches.as_numpy_iterator() if hasattr(batches, "as_numpy_iterator") else batches)]
        return np.concatenate(outs) if outs else np.zeros((0, len(self.labels)), np.float32)


def expand_inputs(inputs: Iterable[str]) -> list[str]:
    """Files, folders (image files inside) and glob patterns -> inputs (see common.inputs)."""
    return expand_paths(inputs, is_image_path)


def _error_for(item: str) -> str | None:
    return input_error(item, "image files (.png, .jpg, .bmp, .gif, ...)")


def classify_paths(classifier: ImageClassifier, inputs: Iterable[str], *, top_k: int = 5,
                   batch_size: int = 32) -> Iterator[dict[str, Any]]:
    """Yield one result per input, in order, decoding in a thread pool and predicting in batches."""
    items = expand_inputs(inputs)
    k = max(1, min(top_k, len(classifier.labels)))

    def decode(item: str) -> np.ndarray | str:
        error = _error_for(item)
        if error:
            return error
        try:
            return load_image(item, size=classifier.image_size)
        except ImageDecodeError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2))) as pool:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            decoded = list(pool.map(decode, chunk))
            good = [i for i, d in enumerate(decoded) if isinstance(d, np.ndarray)]
            probs = classifier.predict(np.stack([decoded[i] for i in good])) if good else None
            row = {i: r for r, i in enumerate(good)}
            for i, item in enumerate(chunk):
                if i not in row:
                    yield {"input": item, "ok": False, "error": decoded[i]}
                    continue
                p = probs[row[i]]
                order = np.argsort(-p, kind="stable")[:k]
                top = [{"label": classifier.labels[j], "score": round(float(p[j]), 6)} for j in order]
                yield {"input": item, "ok": True, "label": top[0]["label"], "score": top[0]["score"], "top_k": top}
