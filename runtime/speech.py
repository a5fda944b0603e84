"""The edge runner for Sensorium speech `.tflite` files: waveform in, log-probabilities and text out.

Like `sensorium.runtime.tflite` it imports no TensorFlow: ai-edge-litert (or tflite-runtime) runs the
file, numpy decodes (`sensorium.runtime.ctc`), and the `sensorium.json` packed inside the
file supplies the alphabet, the blank id and the framing.

Example::

    recognizer = EdgeSpeechRecognizer("exports/model-int8.tflite")
    text = recognizer.transcribe(waveform)          # float32 mono 16 kHz samples in [-1, 1]
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sensorium.runtime.tflite import EdgeModel
from sensorium.runtime.errors import ModelError, UsageError


class EdgeSpeechRecognizer:
    """A speech `.tflite` with its manifest: `log_probs(wave)` -> (frames, V), `transcribe(wave)` -> text."""

    def __init__(self, path: str | Path, *, num_threads: int | None = None) -> None:
        self.model = EdgeModel(path, num_threads=num_threads)
        self.path = self.model.path
        manifest = self.model.manifest
        if manifest.get("task") != "speech":
            raise ModelError(f"{self.path}: not a Sensorium speech model (task {manifest.get('task') or 'unknown'})")
        try:
            self.alphabet = str(manifest["alphabet"])
            self.blank = int(manifest.get("blank", 0))
            self.sample_rate = int(manifest.get("sample_rate", 16000))
            self.info: dict[str, Any] = {k: int(manifest[k]) for k in ("frame_length", "frame_step", "subsampling")}
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{self.path}: sensorium.json lacks the speech fields ({exc})") from None
        if self.blank != 0:
            raise ModelError(f"{self.path}: blank id {self.blank} is not supported (Sensorium models use 0)")
        if len(self.model.input["shape_signature"]) != 2:
            raise ModelError(f"{self.path}: expected a (1, samples) waveform input, the model takes "
                             f"{tuple(self.model.input['shape_signature'])}")

    @property
    def runtime(self) -> str:
        return self.model.runtime

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet) + 1

    def frames(self, num_samples: int) -> int:
        """Output frames for `num_samples` input samples (from the manifest's framing)."""
        from sensorium.pipelines.speech.predict import frames_from_info

        return frames_from_info(self.info, num_samples)

    def log_probs(self, wave: np.ndarray) -> np.ndarray:
        """One utterance, float32 mono samples (N,) at `sample_rate` -> (frames, V) log-probabilities."""
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1:
            raise UsageError(f"expected one mono waveform of shape (samples,), got shape {wave.shape}")
        if self.frames(len(wave)) == 0:  # shorter than one analysis window: nothing to transcribe
            return np.zeros((0, self.vocab_size), np.float32)
        return self.model(wave[None])[0]

    __call__ = log_probs

    def transcribe(self, wave: np.ndarray, beam: int = 1) -> str:
        """Text of one utterance: greedy CTC decoding, or prefix beam search with `beam` > 1."""
        from sensorium.runtime.ctc import beam_search_decode, greedy_decode

        scores = self.log_probs(wave)
        if beam <= 1:
            return greedy_decode(scores, alphabet=self.alphabet)
        return beam_search_decode(scores, beam=beam, alphabet=self.alphabet)
