"""The image task's Keras back ends: a run directory, a `.keras` file or a SavedModel behind the
runtime's `ImageClassifier` (same interface, records and errors as its `.tflite` path)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sensorium.pipelines.common.artifacts import Artifact, load_keras, load_predictor
from sensorium.runtime.errors import ModelError
from sensorium.runtime.image import ImageClassifier, min_side_of

DEFAULT_SIZE = (224, 224)


def load(model: Artifact | str | Path) -> ImageClassifier:
    """The classifier of any image artifact (run directory, .keras, SavedModel, .tflite)."""
    return load_predictor(model, ImageClassifier, keras=_from_keras, saved_model=_from_saved_model)


def _from_keras(artifact: Artifact) -> ImageClassifier:
    import tensorflow as tf

    from sensorium.models.blocks import read_task_metadata

    model = load_keras(artifact.keras_path)
    meta = read_task_metadata(model)
    if meta is None:
        raise ModelError(f"{artifact.path}: this .keras model carries no Sensorium task metadata")
    if meta["task"] != ImageClassifier.task:
        raise ModelError(f"{artifact.path} is a '{meta['task']}' model, not '{ImageClassifier.task}'")
    labels = artifact.labels or meta.get("labels")
    if not labels:
        raise ModelError(f"{artifact.path}: the model carries no class labels")
    size = tuple(meta.get("info", {}).get("image_size") or DEFAULT_SIZE)
    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                     input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8)])
    return ImageClassifier(list(labels), (int(size[0]), int(size[1])), lambda x: fn(x).numpy(), str(artifact.path),
                           min_side=min_side_of(meta.get("info", {})))


def _from_saved_model(artifact: Artifact) -> ImageClassifier:
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
    size = tuple(artifact.info.get("input", {}).get("image_size") or artifact.info.get("image_size") or DEFAULT_SIZE)
    (in_name, in_spec), = fn.structured_input_signature[1].items()
    out_name = next(iter(fn.structured_outputs))

    def run(x: np.ndarray) -> np.ndarray:
        return fn(**{in_name: tf.constant(x, in_spec.dtype)})[out_name].numpy()

    return ImageClassifier(list(artifact.labels), (int(size[0]), int(size[1])), run, str(artifact.path),
                           runtime="saved_model", min_side=min_side_of(artifact.info.get("input", {})))
