"""The translation task's export adapter.

- TFLite: one file with the ``encode`` and ``decode_step`` signatures (see
  `sensorium.runtime.translation`), builtin ops only, tokenizer(s) and ``sensorium.json`` packed
  inside; the decoding loop runs in the edge runner. Variants: none (float32), dynamic, float16.
- SavedModel: ``serving_default(text: string [B]) -> {"translation": string [B]}``, string in and string
  out: placeholder protection, tokenisation (tensorflow-text), greedy decoding in a ``tf.while_loop``
  with the same placeholder constraints, detokenisation and restoration all inside the graph; load it
  after ``import tensorflow_text``. ``encode`` and ``decode_step`` signatures are there too.

Parity translates the test sentences greedily through each exported path and reports its BLEU and
chrF next to Keras's, and the share of identical translations.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.artifacts import Artifact, load_task_model, run_config
from sensorium.runtime.atomic import atomic_path
from sensorium.runtime.errors import DataError, UsageError
from sensorium.runtime.translation import Translator

log = logging.getLogger(__name__)

TASK = Translator.task
PARITY_SENTENCES = 300
QUANT_NAMES = {"none": "float32", "dynamic": "dynamic-range int8 weights, float activations",
               "float16": "float16 weights, float32 compute"}
# An exported translator passes parity when BOTH hold: at least AGREEMENT[variant] of its greedy
# translations are identical to Keras's, and its corpus chrF is within CHRF_TOLERANCE points of Keras's
# (and it keeps every placeholder Keras keeps). Quantised weights move a few logits; once one token
# differs the rest of that sentence is decoded from another prefix, so a sound int8-weight file changes
# some sentences outright: the agreement bar is lower for it than for float32, and chrF bounds how much
# the changes may cost. A broken export (agreement near 0) fails either way.
AGREEMENT = {"saved_model": 0.99, "none": 0.99, "float16": 0.97, "dynamic": 0.90}
CHRF_TOLERANCE = 1.0
LATENCY_SENTENCES = 20  # single-sentence calls timed for the median latency


@dataclass
class TranslationExportSource:
    artifact: Artifact
    model: Any
    info: dict[str, Any]
    tokenizers: Any

    task = TASK
    formats = ("saved_model", "tflite")
    quantizations = ("none", "dynamic", "float16")
    unavailable = {"int8": "int8 (full-integer) quantisation is not offered for translation models: the decoder's "
                           "log-probabilities need float; use --quantize dynamic or float16"}

    @classmethod
    def load(cls, artifact: Artifact) -> TranslationExportSource:
        from sensorium.models.translation import training_objects
        from sensorium.runtime.tokenizer import tokenizers_from

        training_objects()
        model, meta = load_task_model(artifact.keras_path, TASK)
        info = meta["info"]
        return cls(artifact, model, info, tokenizers_from(str(artifact.path), info=info))

    @property
    def encoder(self) -> Any:
        return self.model.get_layer("encoder")

    @property
    def decoder(self) -> Any:
        return self.model.get_layer("decoder")

    @property
    def embed_dim(self) -> int:
        return int(self.encoder.output.shape[-1])

    def manifest(self, fmt: str, variant: str, version: str) -> dict[str, Any]:
        from sensorium.runtime.placeholders import PLACEHOLDER_SYMBOLS
        from sensorium.runtime.tokenizer import BOS_ID, EOS_ID, PAD_ID

        info = {k: v for k, v in self.info.items() if not k.endswith("tokenizer_model")}
        tok = ({"shared": True, "file": "tokenizer.model"} if self.tokenizers.shared else
               {"shared": False, "source_file": "source_tokenizer.model", "target_file": "target_tokenizer.model"})
        out = {
            "task": TASK, "format": fmt, "variant": variant, "quantization": QUANT_NAMES.get(variant, variant),
            "sensorium_version": version, "max_source_length": int(self.info["max_source_length"]),
            "max_target_length": int(self.info["max_target_length"]), "model": info,
            "tokenizer": {**tok, "kind": "sentencepiece-bpe", "pad_id": PAD_ID, "bos_id": BOS_ID, "eos_id": EOS_ID,
                          "placeholder_symbols": list(PLACEHOLDER_SYMBOLS)},
            "signatures": {
                "encode": "source_ids int32 [B, S] ([2] + source pieces, 0 pads) -> memory float32 [B, S, D]",
                "decode_step": "memory [N, S, D], source_ids [N, S], target_ids int32 [N, t] (prefix from BOS 2) -> "
                               "log_probs float32 [N, V] of the next token",
            },
            "decoding": "greedy or beam search until EOS (3) or max_target_length; placeholders and HTML tags are "
                        "replaced by <ph0>.. before tokenisation and restored after (sensorium.pipelines.translation)",
        }
        if fmt == "saved_model":
            out["signatures"]["serving_default"] = ("text string [B] -> translation string [B] (greedy; placeholders "
                                                    "protected in the graph; import tensorflow_text before loading)")
        return out

    # --- data ----------------------------------------------------------------------------------
    def evaluation_data(self, spec: str | None) -> tuple[list[str], list[str]]:
        """(sources, references): `spec` or the run's data @test, at most PARITY_SENTENCES (seeded pick)."""
        from sensorium.pipelines.common.dataspec import parse_spec
        from sensorium.pipelines.translation.config import ParallelDataConfig, TranslationConfig
        from sensorium.pipelines.translation.data import load_parallel_split

        cfg = run_config(self.artifact, TranslationConfig)
        data_cfg, seed = (cfg.data, cfg.seed) if cfg is not None else (ParallelDataConfig(spec=""), 42)
        if spec and spec.endswith(".npy"):
            raise DataError(f"{spec}: translation parity data is a data spec (.tsv, a folder of .po files, tfds:, "
                            "builtin:)")
        if not spec:
            if not data_cfg.spec:
                raise UsageError("a .keras file carries no data spec: pass --parity-data SPEC")
            base = data_cfg.spec.rsplit("@", 1)[0] if parse_spec(data_cfg.spec).split else data_cfg.spec
            spec = f"{base}@test"
        split = load_parallel_split(spec, data_cfg, seed=seed, default_split="test")
        sources, targets = split.sources, split.targets
        if len(sources) > PARITY_SENTENCES:
            pick = np.sort(np.random.default_rng(seed).choice(len(sources), size=PARITY_SENTENCES, replace=False))
            sources, targets = [sources[i] for i in pick], [targets[i] for i in pick]
        return list(sources), list(targets)

    def calibration_data(self, spec: str | None) -> None:
        return None

    # --- running -------------------------------------------------------------------------------
    def _translator(self, encode: Callable, step: Callable, max_batch: int = 32) -> Any:
        from sensorium.runtime.translation import Translator, model_length_penalty

        return Translator(encode, step, self.tokenizers, int(self.info["max_source_length"]),
                          int(self.info["max_target_length"]), str(self.artifact.path), max_batch=max_batch,
                          tuned_length_penalty=model_length_penalty(self.info, str(self.artifact.path)),
                          split="none")  # parity on whole texts, as the SavedModel's graph reads them

    def run_keras(self, data: tuple[list[str], list[str]]) -> list[str]:
        from sensorium.pipelines.translation.predict import keras_functions

        return self._translator(*keras_functions(self.model)).translate(data[0], beam=1)

    def saved_model_runner(self, path: str | Path) -> Callable[[list[str]], list[str]]:
        from sensorium.pipelines.translation.predict import SavedModelTranslator

        return SavedModelTranslator.load(path).translate

    def tflite_runner(self, path: str | Path) -> tuple[Callable[[list[str]], list[str]], str]:
        from sensorium.runtime.translation import Translator

        edge = Translator.from_tflite(path).configure(split="none")  # its own packed tokenizers and lengths
        return (lambda texts: edge.translate(texts, beam=1)), edge.runtime

    def parity(self, variant: str, run: Callable[[list[str]], list[str]], data: tuple[list[str], list[str]],
               keras_outputs: list[str], *, size_bytes: int, path: str, latency_runs: int) -> dict[str, Any]:
        from sensorium.pipelines.translation.evaluate import corpus_scores, placeholder_rate

        sources, references = data
        started = time.perf_counter()
        outputs = run(list(sources))  # one call over every sentence: throughput
        seconds = time.perf_counter() - started
        single = []
        for source in list(sources)[:LATENCY_SENTENCES]:  # one sentence per call: latency
            started = time.perf_counter()
            run([source])
            single.append(time.perf_counter() - started)
        mine, theirs = corpus_scores(outputs, references), corpus_scores(keras_outputs, references)
        agreement = float(np.mean([a == b for a, b in zip(outputs, keras_outputs)])) if outputs else 0.0
        kept = placeholder_rate(list(sources), outputs)[0]
        threshold = AGREEMENT[variant]
        passed = (agreement >= threshold and abs(mine["chrf"] - theirs["chrf"]) <= CHRF_TOLERANCE
                  and kept >= placeholder_rate(list(sources), keras_outputs)[0])
        tokens = sum(len(self.tokenizers.target.encode_pieces([o])[0]) + 1 for o in outputs)
        return {
            "variant": variant, "path": path, "size_bytes": int(size_bytes), "count": len(sources),
            "bleu": mine["bleu"], "chrf": mine["chrf"], "keras_bleu": theirs["bleu"], "keras_chrf": theirs["chrf"],
            "placeholders_preserved": kept,
            "agreement": agreement, "agreement_threshold": threshold, "passed": bool(passed),
            "chrf_tolerance": CHRF_TOLERANCE, "max_abs_diff": float("nan"),
            "latency_ms_median": 1000.0 * float(np.median(single)) if single else float("nan"),
            "latency_calls": len(single),
            "ms_per_sentence_batched": 1000.0 * seconds / max(1, len(sources)),
            "tokens_per_second_batched": tokens / max(seconds, 1e-9),
        }

    # --- writing -------------------------------------------------------------------------------
    def _module(self) -> Any:
        """A tf.Module with the encode and decode_step functions (and what the SavedModel adds)."""
        import tensorflow as tf

        encoder, decoder, d = self.encoder, self.decoder, self.embed_dim
        module = tf.Module()
        module.encoder, module.decoder = encoder, decoder

        @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32, name="source_ids")])
        def encode(source_ids):
            return {"memory": encoder(source_ids, training=False)}  # (B, S, D)

        @tf.function(input_signature=[tf.TensorSpec((None, None, d), tf.float32, name="memory"),
                                      tf.TensorSpec((None, None), tf.int32, name="source_ids"),
                                      tf.TensorSpec((None, None), tf.int32, name="target_ids")])
        def decode_step(memory, source_ids, target_ids):
            logits = decoder([memory, source_ids, target_ids], training=False)  # (N, t, V)
            return {"log_probs": tf.nn.log_softmax(logits[:, -1, :], axis=-1)}  # (N, V)

        module.encode, module.decode_step = encode, decode_step
        return module

    def tflite_files(self, variant: str, version: str) -> dict[str, bytes]:
        files = {"sensorium.json": json.dumps(self.manifest("tflite", variant, version), indent=2).encode()}
        if self.tokenizers.shared:
            files["tokenizer.model"] = self.tokenizers.source.proto
        else:
            files["source_tokenizer.model"] = self.tokenizers.source.proto
            files["target_tokenizer.model"] = self.tokenizers.target.proto
        return files

    def to_tflite(self, variant: str, calibration: Any = None) -> bytes:
        from sensorium.export.tflite import convert_archive

        if variant in self.unavailable:
            raise UsageError(self.unavailable[variant])
        import keras

        module = self._module()
        # keras.export.ExportArchive, not tf.saved_model.save: the converter then freezes the Keras
        # variables into constants (with a plain tf.Module they stay READ_VARIABLE ops, uninitialised
        # in the interpreter).
        archive = keras.export.ExportArchive()
        archive.track(self.encoder)
        archive.track(self.decoder)
        archive.add_endpoint("encode", module.encode)
        archive.add_endpoint("decode_step", module.decode_step)
        return convert_archive(archive, variant, signature_keys=["encode", "decode_step"])

    def write_saved_model(self, out: Path, version: str) -> Path:
        import tensorflow as tf

        from sensorium.export.translation_graph import greedy_translate_fn
        from sensorium.pipelines.common.text_graph import tf_tokenizer

        module = self._module()
        module.source_tokenizer = tf_tokenizer(self.tokenizers.source)
        module.target_tokenizer = (module.source_tokenizer if self.tokenizers.shared
                                   else tf_tokenizer(self.tokenizers.target))
        translate = greedy_translate_fn(module, self.tokenizers, max_source=int(self.info["max_source_length"]),
                                        max_target=int(self.info["max_target_length"]))
        module.translate = tf.function(translate, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        out = Path(out)
        with atomic_path(out) as tmp:
            tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.translate,
                                                               "encode": module.encode,
                                                               "decode_step": module.decode_step})
            assets = tmp / "assets"
            assets.mkdir(exist_ok=True)
            (assets / "sensorium.json").write_text(json.dumps(self.manifest("saved_model", "none", version), indent=2)
                                                   + "\n", encoding="utf-8")
            for name, data in self.tflite_files("none", version).items():
                if name.endswith(".model"):
                    (assets / name).write_bytes(data)
        return out
