"""Translate texts with a trained translator: placeholder protection, subword tokenisation, greedy or
beam-search decoding (numpy, `decode.py`) over an `encode` and a `decode_step` function, restoration.

The same loop runs on a Keras model (run directory or `.keras`) and on a `.tflite` file on the edge
runner (no TensorFlow); a SavedModel carries its own greedy loop in the graph.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sensorium.pipelines.common.artifacts import Artifact, inspect_artifact, load_task_model, require_task
from sensorium.runtime.errors import ModelError, UsageError

TASK = "translation"
Encode = Callable[[np.ndarray], np.ndarray]  # source ids (B, S) int32 -> memory (B, S, D) float32
Step = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # memory, source ids, prefixes -> log-probs (N, V)


def tokenizers_from_info(info: dict[str, Any], source: str):
    """The (source, target) tokenizers stored in a translator's metadata."""
    from sensorium.runtime.tokenizer import SubwordTokenizer
    from sensorium.pipelines.translation.data import Tokenizers

    def load(key: str):
        try:
            return SubwordTokenizer(base64.b64decode(info[key], validate=True), source=f"{source}:{key}")
        except (KeyError, ValueError):
            raise ModelError(f"{source}: the model's metadata lacks a usable {key}") from None

    if "tokenizer_model" in info:
        shared = load("tokenizer_model")
        return Tokenizers(shared, shared)
    return Tokenizers(load("source_tokenizer_model"), load("target_tokenizer_model"))


@dataclass
class Translator:
    """`translate(texts, beam)` -> translations. `encode`/`step` run the model; the rest is shared."""

    encode: Encode
    step: Step
    tokenizers: Any
    max_source_length: int
    max_target_length: int
    source: str
    max_batch: int = 32
    length_penalty: float | None = None  # beam search's GNMT alpha (None: decode.DEFAULT_LENGTH_PENALTY)

    @classmethod
    def from_artifact(cls, artifact: Artifact | str | Path) -> "Translator":
        if not isinstance(artifact, Artifact):
            artifact = inspect_artifact(artifact)
        require_task(artifact, TASK)
        if artifact.kind == "tflite":
            return cls.from_tflite(artifact.path)
        if artifact.kind == "saved_model":
            raise ModelError(f"{artifact.path}: a translation SavedModel is used through its own signature "
                             "(serving_default: text -> translation); give the run directory or the .tflite")
        from sensorium.models.translation import training_objects

        training_objects()
        path = artifact.keras_path
        model, meta = load_task_model(path, TASK)
        info = meta["info"]
        encode, step = keras_functions(model)
        return cls(encode, step, tokenizers_from_info(info, str(path)), int(info["max_source_length"]),
                   int(info["max_target_length"]), str(path))

    @classmethod
    def from_tflite(cls, path: str | Path, *, num_threads: int | None = None) -> "Translator":
        from sensorium.runtime.translation import EdgeTranslator

        edge = EdgeTranslator(path, num_threads=num_threads)
        return cls(edge.encode, edge.decode_step, edge.tokenizers, edge.max_source_length, edge.max_target_length,
                   str(path), max_batch=edge.max_batch)

    # --- the shared loop ------------------------------------------------------------------------
    def prepare(self, texts: list[str]) -> tuple[list[list[int]], list[list[str]], list[Any]]:
        """(source ids, placeholder originals, decoding constraints) per text."""
        from sensorium.runtime.tokenizer import BOS_ID, PAD_ID, UNK_ID
        from sensorium.runtime.beam_search import Constraint
        from sensorium.runtime.placeholders import PLACEHOLDER_SYMBOLS, protect

        symbol_ids = [self.tokenizers.target.piece_to_id(s) for s in PLACEHOLDER_SYMBOLS]
        ids, originals, constraints = [], [], []
        for text in texts:
            masked, found = protect(text.replace("\x00", " "))  # NUL: a space (the SavedModel's splitter stops at it)
            ids.append(self.tokenizers.source.encode([masked], self.max_source_length)[0])
            originals.append(found)
            required: dict[int, int] = {}
            for k, sym in enumerate(PLACEHOLDER_SYMBOLS):
                n = masked.count(sym)
                if n:
                    required[symbol_ids[k]] = n
            forbidden = frozenset({PAD_ID, BOS_ID, UNK_ID} | {i for i in symbol_ids if i not in required})
            constraints.append(Constraint(required=required, forbidden=forbidden))
        return ids, originals, constraints

    def decode_ids(self, source_ids: list[list[int]], constraints: list[Any], beam: int = 1) -> list[list[int]]:
        """Target ids (no BOS/EOS) per source, decoded in batches of similar length."""
        from sensorium.runtime.tokenizer import BOS_ID, EOS_ID
        from sensorium.runtime.beam_search import (DEFAULT_LENGTH_PENALTY, append_missing, beam_search,
                                                            greedy_decode)

        alpha = DEFAULT_LENGTH_PENALTY if self.length_penalty is None else self.length_penalty

        out: list[list[int] | None] = [None] * len(source_ids)
        order = np.argsort([len(s) for s in source_ids], kind="stable")
        for start in range(0, len(order), self.max_batch):
            idx = order[start : start + self.max_batch]
            batch = np.zeros((len(idx), max(len(source_ids[i]) for i in idx)), np.int32)  # (B, S)
            for row, i in enumerate(idx):
                batch[row, : len(source_ids[i])] = source_ids[i]
            memory = self.encode(batch)  # (B, S, D)

            def step(rows: np.ndarray, prefixes: np.ndarray) -> np.ndarray:
                return self.step(memory[rows], batch[rows], prefixes.astype(np.int32))

            limits = [min(self.max_target_length, 2 * len(source_ids[i]) + 10) for i in idx]
            cons = [constraints[i] for i in idx]
            if beam <= 1:
                found = greedy_decode(step, len(idx), bos_id=BOS_ID, eos_id=EOS_ID, max_lengths=limits, constraints=cons)
            else:
                found = beam_search(step, len(idx), bos_id=BOS_ID, eos_id=EOS_ID, max_lengths=limits, beam=beam,
                                    length_penalty=alpha, constraints=cons)
            for row, i in enumerate(idx):
                out[i] = append_missing(list(found[row]), cons[row])
        return out  # type: ignore[return-value]

    def translate(self, texts: list[str], beam: int = 1) -> list[str]:
        from sensorium.runtime.placeholders import restore

        if not texts:
            return []
        ids, originals, constraints = self.prepare(list(texts))
        decoded = self.decode_ids(ids, constraints, beam)
        return [restore(self.tokenizers.target.decode(d), o) for d, o in zip(decoded, originals)]


class SavedModelTranslator:
    """The exported string-in / string-out SavedModel (`serving_default`: greedy decoding in the graph)."""

    def __init__(self, path: str | Path, batch_size: int = 32) -> None:
        from sensorium.export.sentiment import load_text_saved_model

        self.serve = load_text_saved_model(path)
        self.source = str(path)
        self.batch_size = batch_size

    def translate(self, texts: list[str], beam: int = 1) -> list[str]:
        import tensorflow as tf

        if beam != 1:
            raise UsageError(f"{self.source}: a translation SavedModel decodes greedily inside its graph; use "
                             "beam 1, or the run directory or .tflite for beam search")
        out: list[str] = []
        for i in range(0, len(texts), self.batch_size):
            got = self.serve(text=tf.constant(texts[i : i + self.batch_size]))["translation"].numpy()
            out += [t.decode("utf-8") for t in got]
        return out


def keras_functions(model: Any) -> tuple[Encode, Step]:
    """`encode` and `decode_step` of a Keras translator as traced functions (one trace each)."""
    import tensorflow as tf

    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    d = int(encoder.output.shape[-1])
    enc = tf.function(lambda s: encoder(s, training=False), input_signature=[tf.TensorSpec((None, None), tf.int32)])

    @tf.function(input_signature=[tf.TensorSpec((None, None, d), tf.float32), tf.TensorSpec((None, None), tf.int32),
                                  tf.TensorSpec((None, None), tf.int32)])
    def step(memory, source_ids, prefixes):
        logits = decoder([memory, source_ids, prefixes], training=False)  # (N, t, V)
        return tf.nn.log_softmax(logits[:, -1, :], axis=-1)  # (N, V)

    return (lambda s: enc(tf.constant(s)).numpy(),
            lambda m, s, p: step(tf.constant(m), tf.constant(s), tf.constant(p)).numpy())


def translate_items(translator: Translator, items: Any, *, beam: int = 1, chunk: int = 64) -> Any:
    """Per-item results in input order ({"input", "ok", "translation"} or {"input", "ok", "error"}),
    chunk by chunk so a long file streams."""
    pending: list[tuple[str, str, str | None]] = []

    def flush():
        good = [text for _, text, error in pending if error is None]
        done = iter(translator.translate(good, beam=beam))
        for name, _, error in pending:
            yield ({"input": name, "ok": False, "error": error} if error is not None
                   else {"input": name, "ok": True, "translation": next(done)})
        pending.clear()

    for item in items:
        pending.append(item)
        if len(pending) >= chunk:
            yield from flush()
    yield from flush()
