"""The sentiment task's export adapter: text classifiers to SavedModel (strings in) and TFLite (ids in).

- SavedModel: ``serving_default(text: string [B]) -> {"probabilities": float32 [B, C], "label": string [B]}``.
  Tokenisation runs in the graph (tensorflow-text's SentencePiece op), so **load it after
  ``import tensorflow_text``**, which registers the op. ``assets/`` holds ``sensorium.json``,
  ``labels.txt`` and ``tokenizer.model``.
- TFLite: input ``token_ids`` int32 ``(B, L)`` (resize at run time; 0 pads), output probabilities
  ``(B, C)``; builtin ops only. ``tokenizer.model``, ``labels.txt`` and ``sensorium.json`` are packed
  inside; the edge runner (`sensorium.runtime.sentiment`) tokenises with them. Ids are ``[2] + pieces``
  cut to ``max_length``.

A model built on a TF Hub text encoder takes strings itself: it exports to a SavedModel only (string
ops have no TFLite builtins).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.artifacts import Artifact, load_task_model, run_config
from sensorium.pipelines.common.text_graph import load_text_saved_model
from sensorium.runtime.atomic import atomic_path
from sensorium.runtime.errors import DataError, ModelError, UsageError
from sensorium.runtime.sentiment import TextClassifier
from sensorium.runtime.text_norm import normalization_of, with_normalization

log = logging.getLogger(__name__)

TASK = TextClassifier.task
OUTPUT_NAME = "probabilities"
PARITY_TEXTS = 2000  # parity runs on at most this many evaluation texts
CALIBRATION_TEXTS = 300
MIN_CALIBRATION_TEXTS = 20
QUANT_NAMES = {"none": "float32", "dynamic": "dynamic-range int8 weights, float activations",
               "float16": "float16 weights, float32 compute", "int8": "int8 weights and activations; int32 ids in, "
               "float32 probabilities out"}


@dataclass
class TextItems:
    """Evaluation texts (as an object array, so the parity code can slice batches) and labels."""

    texts: np.ndarray  # (N,) object: str
    labels: np.ndarray | None
    spec: str


@dataclass
class SentimentExportSource:
    """What exporting a text classifier needs, read from a run directory or a .keras file."""

    artifact: Artifact
    model: Any
    labels: list[str]
    info: dict[str, Any]
    tokenizer: Any  # SubwordTokenizer, or None for a hub text encoder (strings in)

    task = TASK

    @classmethod
    def load(cls, artifact: Artifact) -> SentimentExportSource:
        from sensorium.runtime.tokenizer import tokenizers_from

        model, meta = load_task_model(artifact.keras_path, TASK)
        info = meta["info"]
        tokenizer = None if info.get("input") == "text" else with_normalization(
            tokenizers_from(str(artifact.path), info=info).source, normalization_of(info, str(artifact.path)))
        return cls(artifact, model, list(meta.get("labels") or []), info, tokenizer)

    # --- description ---------------------------------------------------------------------------
    @property
    def takes_text(self) -> bool:
        return self.tokenizer is None

    @property
    def formats(self) -> tuple[str, ...]:
        return ("saved_model",) if self.takes_text else ("saved_model", "tflite")

    @property
    def quantizations(self) -> tuple[str, ...]:
        if self.takes_text:
            return ("none",)
        from sensorium.export.tflite import QUANTIZATIONS

        return tuple(q for q in QUANTIZATIONS if q not in self.unavailable)

    @property
    def unavailable(self) -> dict[str, str]:
        if self.info.get("lexicon"):  # its sentence features divide by counts that int8 rounds to zero
            return {"int8": "int8 (full-integer) quantisation is not offered for sentiment models with lexicon "
                            "features (their ratios divide by counts that int8 rounds to zero); use dynamic or "
                            "float16"}
        return {}

    @property
    def max_length(self) -> int:
        return int(self.info.get("max_length", 128))

    def manifest(self, fmt: str, variant: str, version: str) -> dict[str, Any]:
        """sensorium.json carried inside the exported file."""
        info = {k: v for k, v in self.info.items() if k != "tokenizer_model"}
        out: dict[str, Any] = {
            "task": TASK, "format": fmt, "variant": variant, "quantization": QUANT_NAMES.get(variant, variant),
            "sensorium_version": version, "labels": self.labels, "max_length": self.max_length,
            "model": info,
        }
        if fmt == "saved_model":
            out["input"] = {"name": "text", "dtype": "string", "shape": [None],
                            "meaning": "UTF-8 texts; tokenised inside the graph (import tensorflow_text before "
                                       "loading)" if not self.takes_text else "UTF-8 texts"}
            out["output"] = {"probabilities": {"dtype": "float32", "shape": [None, len(self.labels)]},
                             "label": {"dtype": "string", "shape": [None]}}
        else:
            from sensorium.runtime.tokenizer import BOS_ID, PAD_ID, TOKENIZER_FILE

            out["input"] = {"name": "token_ids", "dtype": "int32", "shape": [None, None],
                            "meaning": f"[{BOS_ID}] + SentencePiece ids of the text ({TOKENIZER_FILE}, packed in "
                                       f"this file), cut to max_length; pad rows with {PAD_ID}"}
            out["tokenizer"] = {"file": TOKENIZER_FILE, "kind": "sentencepiece-bpe", "pad_id": PAD_ID,
                                "bos_id": BOS_ID, "prepend_bos": True}
            out["output"] = {"name": OUTPUT_NAME, "dtype": "float32", "shape": [None, len(self.labels)],
                             "meaning": "softmax over labels.txt"}
        return out

    # --- data ----------------------------------------------------------------------------------
    def _texts(self, spec: str | None, split: str, limit: int, purpose: str) -> TextItems:
        from sensorium.pipelines.common.dataspec import parse_spec
        from sensorium.pipelines.sentiment.config import SentimentConfig, TextDataConfig
        from sensorium.pipelines.sentiment.data import load_text_split

        if spec and spec.endswith(".npy"):
            raise DataError(f"{spec}: text {purpose} data is a data spec (a .csv/.tsv, tfds:NAME, builtin:tweets)")
        cfg = run_config(self.artifact, SentimentConfig)
        data_cfg, seed = (cfg.data, cfg.seed) if cfg is not None else (TextDataConfig(spec=""), 42)
        if not spec:
            if not data_cfg.spec:
                raise UsageError(f"a .keras file carries no data spec: pass --{purpose}-data SPEC")
            base = data_cfg.spec.rsplit("@", 1)[0] if parse_spec(data_cfg.spec).split else data_cfg.spec
            spec = f"{base}@{split}"
        loaded = load_text_split(spec, data_cfg, seed=seed, default_split=split, label_names=self.labels)
        texts, labels = loaded.items.texts, loaded.items.labels
        if len(texts) > limit:
            pick = np.sort(np.random.default_rng(seed).choice(len(texts), size=limit, replace=False))
            texts, labels = [texts[i] for i in pick], labels[pick]
            log.info("%s: %d of %d texts used for %s", spec, limit, loaded.count, purpose)
        return TextItems(np.asarray(texts, dtype=object), labels, spec)

    def evaluation_data(self, spec: str | None) -> tuple[np.ndarray, np.ndarray | None]:
        items = self._texts(spec, "test", PARITY_TEXTS, "parity")
        return items.texts, items.labels

    def calibration_data(self, spec: str | None) -> list[np.ndarray]:
        """int8 calibration: token ids (1, L) of training texts."""
        items = self._texts(spec, "train", CALIBRATION_TEXTS, "calibration")
        if len(items.texts) < MIN_CALIBRATION_TEXTS:
            raise UsageError(f"int8 calibration needs at least {MIN_CALIBRATION_TEXTS} texts; {items.spec} has "
                             f"{len(items.texts)}")
        return [np.asarray([ids], np.int32) for ids in self.tokenizer.encode(list(items.texts), self.max_length)]

    # --- running -------------------------------------------------------------------------------
    def keras_fn(self) -> Callable[[Any], np.ndarray]:
        """texts -> probabilities with the Keras model (Python tokenisation)."""
        from sensorium.pipelines.sentiment.predict import compiled
        from sensorium.runtime.sentiment import run_on_ids

        if self.takes_text:
            import tensorflow as tf

            return lambda texts: np.asarray(self.model(tf.constant(list(texts)), training=False))
        fn = compiled(self.model)
        return lambda texts: run_on_ids(fn, self.tokenizer.encode(list(texts), self.max_length), len(self.labels))

    def run_keras(self, data: tuple[np.ndarray, Any]) -> np.ndarray:
        from sensorium.export.parity import run_batched

        return run_batched(self.keras_fn(), data[0])

    def saved_model_runner(self, path: str | Path) -> Callable[[Any], np.ndarray]:
        import tensorflow as tf

        serve = load_text_saved_model(path)
        return lambda texts: serve(text=tf.constant(list(texts)))[OUTPUT_NAME].numpy()

    def tflite_runner(self, path: str | Path) -> tuple[Callable[[Any], np.ndarray], str]:
        from sensorium.runtime.sentiment import TextClassifier

        edge = TextClassifier.from_tflite(path).configure(long_text="truncate")  # whole texts, as keras_fn reads them
        return (lambda texts: edge.predict(list(texts))), edge.runtime

    def parity(self, variant: str, run: Callable[[Any], np.ndarray], data: tuple[np.ndarray, Any],
               keras_outputs: np.ndarray, *, size_bytes: int, path: str, latency_runs: int) -> dict[str, Any]:
        from sensorium.export.parity import parity_row

        x, y = data
        return parity_row(TASK, variant, run, x, y, keras_outputs, size_bytes=size_bytes, path=path,
                          latency_runs=latency_runs)

    # --- writing -------------------------------------------------------------------------------
    def write_saved_model(self, out: Path, version: str) -> Path:
        """SavedModel taking strings (serving_default), assets: sensorium.json, labels.txt, tokenizer.model."""
        import tensorflow as tf

        from sensorium.pipelines.common.text_graph import tf_encode, tf_normalize, tf_tokenizer
        from sensorium.runtime.tokenizer import TOKENIZER_FILE

        model, max_length = self.model, self.max_length
        module = tf.Module()
        module.model = model
        module.label_table = tf.constant(self.labels)
        if self.takes_text:
            def classify(text):
                probs = model(text, training=False)
                return {OUTPUT_NAME: probs, "label": tf.gather(module.label_table, tf.argmax(probs, axis=-1))}
        else:
            module.tokenizer = tf_tokenizer(self.tokenizer)
            normalization = normalization_of(self.info)

            def classify(text):
                ids = tf_encode(module.tokenizer, tf_normalize(text, normalization), max_length)  # (B, L) int32
                probs = model(ids, training=False)
                return {OUTPUT_NAME: probs, "label": tf.gather(module.label_table, tf.argmax(probs, axis=-1))}
        module.classify = tf.function(classify, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        out = Path(out)
        with atomic_path(out) as tmp:
            tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.classify})
            assets = tmp / "assets"
            assets.mkdir(exist_ok=True)
            (assets / "sensorium.json").write_text(json.dumps(self.manifest("saved_model", "none", version), indent=2)
                                                   + "\n", encoding="utf-8")
            (assets / "labels.txt").write_text("".join(f"{label}\n" for label in self.labels), encoding="utf-8")
            if self.tokenizer is not None:
                (assets / TOKENIZER_FILE).write_bytes(self.tokenizer.proto)
        return out

    def tflite_files(self, variant: str, version: str) -> dict[str, bytes]:
        from sensorium.runtime.tokenizer import TOKENIZER_FILE

        return {"sensorium.json": json.dumps(self.manifest("tflite", variant, version), indent=2).encode(),
                "labels.txt": "".join(f"{label}\n" for label in self.labels).encode(),
                TOKENIZER_FILE: self.tokenizer.proto}

    def to_tflite(self, variant: str, calibration: list[np.ndarray] | None = None) -> bytes:
        """`.tflite` taking int32 token ids (B, L), builtin ops only."""
        import keras
        import tensorflow as tf

        from sensorium.export.tflite import convert_archive

        if self.takes_text:
            raise UsageError("a model on a TF Hub text encoder takes strings, which TFLite builtins cannot; "
                             "export --format saved_model")
        if variant not in self.quantizations:
            raise UsageError(f"--quantize {variant} is not available for sentiment; use: "
                             f"{', '.join(self.quantizations)}")
        model = self.model

        def serve(token_ids):
            return {OUTPUT_NAME: model(token_ids, training=False)}

        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serving_default", tf.function(serve),
                             input_signature=[tf.TensorSpec((None, None), tf.int32, name="token_ids")])

        def calibrate(converter: Any) -> None:
            samples = list(calibration or [])
            if len(samples) < MIN_CALIBRATION_TEXTS:
                raise ModelError(f"int8 needs at least {MIN_CALIBRATION_TEXTS} calibration texts, got {len(samples)}")
            converter.representative_dataset = lambda: ([s] for s in samples)

        return convert_archive(archive, variant, configure=calibrate if variant == "int8" else None)
