"""The edge runner for Sensorium text-classifier `.tflite` files: texts in, class probabilities out.

Like `sensorium.runtime.tflite` it imports no TensorFlow. TFLite builtins have no string ops, so the
file takes int32 token ids; the SentencePiece model packed inside it (`tokenizer.model`) turns texts
into those ids with the `sentencepiece` package, exactly as the SavedModel's in-graph tokenizer does.

Example::

    classifier = EdgeTextClassifier("exports/model-float32.tflite")
    probs = classifier.predict(["what a lovely day", "never again"])   # (2, C)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sensorium.runtime.tflite import EdgeModel
from sensorium.runtime.errors import ModelError


class EdgeTextClassifier:
    """A text-classifier `.tflite` with its tokenizer and labels: `predict(texts)` -> (N, C)."""

    def __init__(self, path: str | Path, *, num_threads: int | None = None, task: str = "sentiment") -> None:
        from sensorium.runtime.tokenizer import TOKENIZER_FILE, SubwordTokenizer

        self.model = EdgeModel(path, num_threads=num_threads)
        self.path = self.model.path
        self.manifest: dict[str, Any] = self.model.manifest
        if self.manifest.get("task") != task:
            raise ModelError(f"{self.path}: not a Sensorium {task} model (task {self.manifest.get('task') or 'unknown'})")
        if TOKENIZER_FILE not in self.model.files:
            raise ModelError(f"{self.path}: the file carries no {TOKENIZER_FILE}")
        self.tokenizer = SubwordTokenizer(self.model.files[TOKENIZER_FILE], source=f"{self.path}:{TOKENIZER_FILE}")
        try:
            self.max_length = int(self.manifest["max_length"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{self.path}: sensorium.json lacks max_length") from None
        labels = self.model.labels
        if not labels:
            raise ModelError(f"{self.path}: the file carries no labels")
        self.labels: list[str] = labels
        if np.dtype(self.model.input["dtype"]) != np.int32 or len(self.model.input["shape_signature"]) != 2:
            raise ModelError(f"{self.path}: expected an int32 (batch, tokens) input, the model takes "
                             f"{self.model.input['dtype']} {tuple(self.model.input['shape_signature'])}")

    @property
    def runtime(self) -> str:
        return self.model.runtime

    def encode(self, texts: list[str]) -> list[list[int]]:
        """The token ids the model reads ([BOS] + pieces, cut to max_length)."""
        return self.tokenizer.encode(texts, self.max_length)

    def predict_ids(self, ids: list[list[int]], batch_size: int = 32) -> np.ndarray:
        from sensorium.pipelines.sentiment.predict import run_on_ids

        return run_on_ids(self.model, ids, len(self.labels), batch_size=batch_size)

    def predict(self, texts: list[str]) -> np.ndarray:
        """Probabilities (N, C) for `texts`, in order."""
        if not texts:
            return np.zeros((0, len(self.labels)), np.float32)
        return self.predict_ids(self.encode(list(texts)))
