"""The edge runner for Sensorium translation `.tflite` files: texts in, translations out, no TensorFlow.

One file, two TFLite signatures (builtin ops only):

- ``encode(source_ids int32 (B, S)) -> memory float32 (B, S, D)``
- ``decode_step(memory (N, S, D), source_ids (N, S), target_ids int32 (N, t)) -> log_probs float32 (N, V)``
  (the next-token log-probabilities after the prefix ``target_ids``, which starts with BOS = 2)

The tokenizer(s) and ``sensorium.json`` are packed inside. The decoding loop (greedy or beam search,
placeholder constraints) is `sensorium.runtime.beam_search`, shared with the Keras path.

Example::

    translator = Translator.from_tflite("exports/model-float32.tflite")   # sensorium.pipelines.translation.predict
    translator.translate(["Save %(name)s"], beam=4)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sensorium.runtime.errors import ModelError
from sensorium.runtime.errors import native_stderr_silenced

SIGNATURES = ("encode", "decode_step")


class EdgeTranslator:
    """A translation `.tflite` with its tokenizers: `encode(ids)`, `decode_step(memory, ids, prefixes)`."""

    def __init__(self, path: str | Path, *, num_threads: int | None = None) -> None:
        from sensorium.runtime.tflite import interpreter_class, read_tflite
        from sensorium.runtime.tokenizer import SubwordTokenizer
        from sensorium.pipelines.translation.data import Tokenizers

        self.path = Path(path)
        data, self.files, self.manifest = read_tflite(self.path)
        if self.manifest.get("task") != "translation":
            raise ModelError(f"{self.path}: not a Sensorium translation model "
                             f"(task {self.manifest.get('task') or 'unknown'})")
        tok = self.manifest.get("tokenizer") or {}
        try:
            if tok.get("shared", True):
                shared = SubwordTokenizer(self.files[tok.get("file", "tokenizer.model")], source=str(self.path))
                self.tokenizers = Tokenizers(shared, shared)
            else:
                self.tokenizers = Tokenizers(SubwordTokenizer(self.files[tok["source_file"]], source=str(self.path)),
                                             SubwordTokenizer(self.files[tok["target_file"]], source=str(self.path)))
            self.max_source_length = int(self.manifest["max_source_length"])
            self.max_target_length = int(self.manifest["max_target_length"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{self.path}: the packed files lack the tokenizer or lengths ({exc})") from None
        Interpreter, self.runtime = interpreter_class()
        try:
            with native_stderr_silenced():
                self.interpreter = Interpreter(model_content=data, num_threads=num_threads)
            keys = set(self.interpreter.get_signature_list())
            if not set(SIGNATURES) <= keys:
                raise ModelError(f"{self.path}: expected signatures {', '.join(SIGNATURES)}, found {', '.join(sorted(keys))}")
            with native_stderr_silenced():  # the runtime prints an "XNNPACK delegate" banner on first use
                self._encode = self.interpreter.get_signature_runner("encode")
                self._step = self.interpreter.get_signature_runner("decode_step")
                self.encode(np.array([[2]], np.int32))
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.path}: corrupt or unsupported TFLite model ({' '.join(str(exc).split())[:200]})") from None
        self.max_batch = 32

    def encode(self, source_ids: np.ndarray) -> np.ndarray:
        """(B, S) int32 -> memory (B, S, D) float32."""
        return self._encode(source_ids=np.asarray(source_ids, np.int32))["memory"]

    def decode_step(self, memory: np.ndarray, source_ids: np.ndarray, target_ids: np.ndarray) -> np.ndarray:
        """Next-token log-probabilities (N, V) after each prefix."""
        out = self._step(memory=np.asarray(memory, np.float32), source_ids=np.asarray(source_ids, np.int32),
                         target_ids=np.asarray(target_ids, np.int32))
        return out["log_probs"]
