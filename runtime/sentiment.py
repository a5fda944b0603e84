"""The sentiment classifier of the runtime: texts in, a label and class probabilities out.

TFLite builtins have no string ops, so a sentiment `.tflite` takes int32 token ids; the SentencePiece
model packed inside it (`tokenizer.model`) turns texts into those ids with the `sentencepiece` package,
exactly as the SavedModel's in-graph tokenizer does. Records: `{"input", "ok", "label", "scores":
{label: probability}}`.

Example::

    clf = TextClassifier.load()                # the bundled tweet model, its .tflite
    clf(["what a lovely day", "never again"])
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sensorium.runtime.errors import ModelError
from sensorium.runtime.predictor import (
    Item,
    Predictor,
    Record,
    check_text,
    error_record,
    length_batches,
    ok_record,
    pad_rows,
)


def run_on_ids(fn: Callable[[np.ndarray], np.ndarray], ids: list[list[int]], num_classes: int,
               batch_size: int = 64) -> np.ndarray:
    """`fn` (int32 (B, L) ids -> (B, C)) over length-grouped padded batches, back in input order: (N, C)."""
    out = np.zeros((len(ids), num_classes), np.float32)
    for idx in length_batches([len(x) for x in ids], batch_size):
        out[idx] = fn(pad_rows([ids[i] for i in idx], np.int32))
    return out


@dataclass
class TextClassifier(Predictor):
    """`run(texts) -> probabilities (N, C)` with the class labels."""

    run: Callable[[list[str]], np.ndarray]
    labels: list[str]
    source: str
    info: dict[str, Any]
    runtime: str = "keras"
    tokenizer: Any = None  # SubwordTokenizer (None for a model that takes strings itself)
    max_length: int | None = None

    task: ClassVar[str] = "sentiment"
    keras_backend: ClassVar[str] = "sensorium.pipelines.sentiment.predict:load"
    chunk_size: ClassVar[int] = 256

    @classmethod
    def from_tflite(cls, path: str | Path, *, num_threads: int | None = None) -> TextClassifier:
        """A sentiment `.tflite` on this runtime: tokenizer, labels and max_length from the file."""
        from sensorium.runtime.tflite import EdgeModel
        from sensorium.runtime.tokenizer import tokenizers_from

        model = EdgeModel(path, num_threads=num_threads)
        model.require_task(cls.task)
        tokenizer = tokenizers_from(str(path), files=model.files, manifest=model.manifest).source
        try:
            max_length = int(model.manifest["max_length"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{path}: sensorium.json lacks max_length") from None
        labels = model.labels
        if not labels:
            raise ModelError(f"{path}: the file carries no labels")
        if np.dtype(model.input["dtype"]) != np.int32 or len(model.input["shape_signature"]) != 2:
            raise ModelError(f"{path}: expected an int32 (batch, tokens) input, the model takes "
                             f"{model.input['dtype']} {tuple(model.input['shape_signature'])}")

        def run(texts: list[str]) -> np.ndarray:
            return run_on_ids(model, tokenizer.encode(texts, max_length), len(labels), batch_size=32)

        return cls(run, list(labels), str(path), dict(model.manifest), model.runtime, tokenizer, max_length)

    def encode(self, texts: list[str]) -> list[list[int]]:
        """The token ids the model reads ([BOS] + pieces, cut to max_length)."""
        if self.tokenizer is None:
            raise ModelError(f"{self.source}: this model takes strings; it has no tokenizer of its own")
        return self.tokenizer.encode(list(texts), int(self.max_length or 0))

    def predict(self, texts: list[str]) -> np.ndarray:
        """Probabilities (N, C) for `texts`, in order."""
        return self.run(list(texts)) if len(texts) else np.zeros((0, len(self.labels)), np.float32)

    def predict_items(self, items: list[Item]) -> list[Record]:
        errors = [item.error or check_text(item.value) for item in items]
        probs = self.predict([item.value for item, error in zip(items, errors) if error is None])
        out, k = [], 0
        for item, error in zip(items, errors):
            if error is not None:
                out.append(error_record(item, error))
                continue
            p = probs[k]
            k += 1
            out.append(ok_record(item, label=self.labels[int(np.argmax(p))],
                                 scores={label: round(float(v), 6) for label, v in zip(self.labels, p)}))
        return out
