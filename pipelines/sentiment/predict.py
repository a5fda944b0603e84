"""The sentiment task's Keras back ends: a run directory or `.keras` file (its tokenizer rides in its
metadata) and a SavedModel (strings in; tokenisation inside the graph, which needs tensorflow-text),
behind the runtime's `TextClassifier` (same interface, records and errors as its `.tflite` path)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.artifacts import Artifact, load_predictor, load_task_model
from sensorium.runtime.sentiment import TextClassifier, run_on_ids
from sensorium.runtime.text_norm import normalization_of, with_normalization
from sensorium.runtime.tokenizer import TOKENIZER_FILE, SubwordTokenizer, tokenizers_from


def load(model: Artifact | str | Path) -> TextClassifier:
    """The classifier of any sentiment artifact (run directory, .keras, SavedModel, .tflite)."""
    return load_predictor(model, TextClassifier, keras=_from_keras, saved_model=_from_saved_model)


def _from_keras(artifact: Artifact) -> TextClassifier:
    path = artifact.keras_path
    model, meta = load_task_model(path, TextClassifier.task)
    info, labels = meta["info"], list(meta["labels"] or [])
    if info.get("input") == "text":  # a hub text encoder: the model takes the strings
        def run_text(texts: list[str]) -> np.ndarray:
            import tensorflow as tf

            return np.concatenate([np.asarray(model(tf.constant(texts[i : i + 64]), training=False))
                                   for i in range(0, len(texts), 64)]) if texts else np.zeros((0, len(labels)))
        return TextClassifier(run_text, labels, str(path), info)
    tokenizer = with_normalization(tokenizers_from(str(path), info=info).source, normalization_of(info, str(path)))
    max_length = int(info["max_length"])
    fn = compiled(model)
    return TextClassifier(lambda texts: run_on_ids(fn, tokenizer.encode(texts, max_length), len(labels)),
                          labels, str(path), info, tokenizer=tokenizer, max_length=max_length)


def _from_saved_model(artifact: Artifact) -> TextClassifier:
    import tensorflow as tf

    from sensorium.pipelines.common.text_graph import load_text_saved_model

    serve = load_text_saved_model(artifact.path)
    labels = list(artifact.labels or [])
    info = dict(artifact.info)

    def run(texts: list[str]) -> np.ndarray:
        parts = [serve(text=tf.constant(texts[i : i + 64]))["probabilities"].numpy()
                 for i in range(0, len(texts), 64)]
        return np.concatenate(parts) if parts else np.zeros((0, len(labels)), np.float32)
    # the graph tokenises; the Python copy of its tokenizer (an asset) only measures texts for long_text
    tokenizer, max_length = None, None
    if (Path(artifact.path) / "assets" / TOKENIZER_FILE).is_file() and isinstance(info.get("max_length"), int):
        tokenizer = with_normalization(SubwordTokenizer.load(Path(artifact.path) / "assets" / TOKENIZER_FILE),
                                       normalization_of(info, str(artifact.path)))
        max_length = int(info["max_length"])
    return TextClassifier(run, labels, str(artifact.path), info, runtime="saved_model", tokenizer=tokenizer,
                          max_length=max_length)


def compiled(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The model as a traced function of int32 (B, L) ids (one trace for every shape)."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec((None, None), tf.int32)],
                     reduce_retracing=True)
    return lambda x: fn(tf.constant(x)).numpy()
