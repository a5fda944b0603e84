"""Run a trained sentiment classifier on texts: class probabilities per text.

Backed by a Keras model (run directory or `.keras`; its tokenizer rides in its metadata), a SavedModel
(strings in; tokenisation inside the graph, which needs tensorflow-text) or a `.tflite` file run by the
edge runner (no TensorFlow; it tokenises with the tokenizer packed inside the file).
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from sensorium.pipelines.common.artifacts import Artifact, inspect_artifact, load_task_model, require_task
from sensorium.runtime.errors import ModelError

TASK = "sentiment"


def pad_batches(ids: list[list[int]], batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Groups of similar length: (indices into `ids`, int32 (B, L) padded with 0)."""
    order = np.argsort([len(x) for x in ids], kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = np.zeros((len(idx), max(len(ids[i]) for i in idx)), np.int32)
        for row, i in enumerate(idx):
            batch[row, : len(ids[i])] = ids[i]
        yield idx, batch


def run_on_ids(fn: Callable[[np.ndarray], np.ndarray], ids: list[list[int]], num_classes: int,
               batch_size: int = 64) -> np.ndarray:
    """`fn` over length-grouped padded batches, results back in input order: (N, C)."""
    out = np.zeros((len(ids), num_classes), np.float32)
    for idx, batch in pad_batches(ids, batch_size):
        out[idx] = fn(batch)
    return out


def tokenizer_from_info(info: dict[str, Any], source: str):
    from sensorium.runtime.tokenizer import SubwordTokenizer

    if "tokenizer_model" not in info:
        raise ModelError(f"{source}: the model's metadata carries no tokenizer")
    try:
        proto = base64.b64decode(info["tokenizer_model"], validate=True)
    except ValueError:
        raise ModelError(f"{source}: the model's tokenizer is corrupt") from None
    return SubwordTokenizer(proto, source=source)


@dataclass
class TextClassifier:
    """`predict(texts)` -> (N, C) probabilities; `labels`; `source`."""

    run: Callable[[list[str]], np.ndarray]
    labels: list[str]
    source: str
    info: dict[str, Any]

    @classmethod
    def from_tflite(cls, path: str | Path, *, num_threads: int | None = None) -> "TextClassifier":
        from sensorium.runtime.sentiment import EdgeTextClassifier

        if Path(path).is_dir():
            raise ModelError(f"{path}: the edge runtime takes a .tflite file")
        edge = EdgeTextClassifier(path, num_threads=num_threads)
        return cls(edge.predict, edge.labels, str(path), dict(edge.manifest))

    @classmethod
    def from_artifact(cls, artifact: Artifact | str | Path) -> "TextClassifier":
        if not isinstance(artifact, Artifact):
            artifact = inspect_artifact(artifact)
        require_task(artifact, TASK)
        if artifact.kind == "tflite":
            return cls.from_tflite(artifact.path)
        if artifact.kind == "saved_model":
            return cls._from_saved_model(artifact)
        path = artifact.keras_path
        model, meta = load_task_model(path, TASK)
        info, labels = meta["info"], list(meta["labels"] or [])
        if info.get("input") == "text":  # a hub text encoder: the model takes the strings
            def run_text(texts: list[str]) -> np.ndarray:
                import tensorflow as tf

                return np.concatenate([np.asarray(model(tf.constant(texts[i : i + 64]), training=False))
                                       for i in range(0, len(texts), 64)]) if texts else np.zeros((0, len(labels)))
            return cls(run_text, labels, str(path), info)
        tokenizer = tokenizer_from_info(info, str(path))
        max_length = int(info["max_length"])
        fn = _compiled(model)
        return cls(lambda texts: run_on_ids(fn, tokenizer.encode(texts, max_length), len(labels)),
                   labels, str(path), info)

    @classmethod
    def _from_saved_model(cls, artifact: Artifact) -> "TextClassifier":
        import tensorflow as tf

        from sensorium.export.sentiment import load_text_saved_model

        serve = load_text_saved_model(artifact.path)
        labels = list(artifact.labels or [])

        def run(texts: list[str]) -> np.ndarray:
            parts = [serve(text=tf.constant(texts[i : i + 64]))["probabilities"].numpy()
                     for i in range(0, len(texts), 64)]
            return np.concatenate(parts) if parts else np.zeros((0, len(labels)), np.float32)
        return cls(run, labels, str(artifact.path), dict(artifact.info))

    def predict(self, texts: list[str]) -> np.ndarray:
        return self.run(list(texts)) if texts else np.zeros((0, len(self.labels)), np.float32)


def _compiled(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The model as a traced function of int32 (B, L) ids (one trace for every shape)."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec((None, None), tf.int32)],
                     reduce_retracing=True)
    return lambda x: fn(tf.constant(x)).numpy()


def classify_texts(classifier: TextClassifier, items: Iterable[tuple[str, str, str | None]], *,
                   chunk: int = 256) -> Iterator[dict[str, Any]]:
    """Per-item results in input order ({"input", "ok", "label", "scores"} or {"input", "ok", "error"}),
    produced chunk by chunk so a long file streams."""
    pending: list[tuple[str, str, str | None]] = []

    def flush() -> Iterator[dict[str, Any]]:
        good = [text for _, text, error in pending if error is None]
        probs = classifier.predict(good) if good else np.zeros((0, len(classifier.labels)))
        k = 0
        for name, _, error in pending:
            if error is not None:
                yield {"input": name, "ok": False, "error": error}
                continue
            p = probs[k]
            k += 1
            best = int(np.argmax(p))
            yield {"input": name, "ok": True, "label": classifier.labels[best],
                   "scores": {label: round(float(v), 6) for label, v in zip(classifier.labels, p)}}
        pending.clear()

    for item in items:
        pending.append(item)
        if len(pending) >= chunk:
            yield from flush()
    yield from flush()
