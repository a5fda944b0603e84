"""Run a trained speech recogniser: waveforms in, per-frame log-probabilities and text out."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sensorium.pipelines.common.artifacts import Artifact, inspect_artifact, load_task_model, require_task
from sensorium.runtime.errors import ModelError
from sensorium.runtime.ctc import beam_search_decode, greedy_decode
from sensorium.runtime.transcripts import ALPHABET

TASK = "speech"
MIN_SECONDS = 0.25


def frames_from_info(info: dict[str, Any], num_samples: int) -> int:
    """Output frames for `num_samples` from a model's metadata (frame length/step, subsampling)."""
    frames = max(0, (int(num_samples) - int(info.get("frame_length", 400))) // int(info.get("frame_step", 160)) + 1)
    factor = int(info.get("subsampling", 4))
    while factor > 1:
        frames, factor = -(-frames // 2), factor // 2
    return frames


@dataclass
class SpeechRecognizer:
    """`log_probs(waves)` -> list of (T', V) arrays (each cut to its utterance's own frames);
    `transcribe(waves, beam)` -> texts. Backed by a Keras model (run directory or .keras), a
    SavedModel, or a `.tflite` file run by the edge runner (no TensorFlow)."""

    run_batch: Callable[[np.ndarray], np.ndarray]  # (B, S) float32 -> (B, T', V) log-probs
    frames: Callable[[int], int]  # samples -> output frames
    info: dict[str, Any]
    source: str
    max_batch: int | None = None  # 1 for TFLite files (their input is (1, samples))

    @classmethod
    def from_tflite(cls, path: str | Path, *, num_threads: int | None = None) -> "SpeechRecognizer":
        """A speech `.tflite` on the edge runner: no TensorFlow needed."""
        from sensorium.runtime.speech import EdgeSpeechRecognizer

        if Path(path).is_dir():
            raise ModelError(f"{path}: the edge runtime takes a .tflite file")
        edge = EdgeSpeechRecognizer(path, num_threads=num_threads)
        return cls(lambda x: edge.log_probs(x[0])[None], edge.frames, dict(edge.info), str(path), max_batch=1)

    @classmethod
    def _from_saved_model(cls, artifact: Artifact) -> "SpeechRecognizer":
        import tensorflow as tf

        try:
            serve = tf.saved_model.load(str(artifact.path)).signatures["serving_default"]
        except (KeyError, OSError, ValueError) as exc:
            raise ModelError(f"{artifact.path}: unusable SavedModel ({str(exc).splitlines()[0][:200]})") from None
        info = {k: artifact.info[k] for k in ("frame_length", "frame_step", "subsampling") if k in artifact.info}
        return cls(lambda x: serve(waveform=tf.constant(x))["log_probs"].numpy(),
                   lambda n: frames_from_info(info, n), info, str(artifact.path))

    @classmethod
    def from_artifact(cls, artifact: Artifact | str | Path) -> "SpeechRecognizer":
        if not isinstance(artifact, Artifact):
            artifact = inspect_artifact(artifact)
        require_task(artifact, TASK)
        if artifact.kind == "tflite":
            return cls.from_tflite(artifact.path)
        if artifact.kind == "saved_model":
            return cls._from_saved_model(artifact)
        path = artifact.keras_path
        model, meta = load_task_model(path, TASK)
        info = meta["info"]
        return cls(lambda x: np.asarray(model(x, training=False)), lambda n: frames_from_info(info, n), info, str(path))

    def log_probs(self, waves: list[np.ndarray], batch_size: int = 16) -> list[np.ndarray]:
        """Per utterance (T', V) log-probabilities; batches of similar lengths, zero-padded. Clips shorter
        than MIN_SECONDS are padded with silence to it (a 0.1 s file still gets a transcript)."""
        minimum = int(MIN_SECONDS * 16000)
        waves = [w if len(w) >= minimum else np.pad(w, (0, minimum - len(w))) for w in waves]
        out: list[np.ndarray | None] = [None] * len(waves)
        order = np.argsort([len(w) for w in waves], kind="stable")
        batch_size = min(batch_size, self.max_batch or batch_size)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            x = np.zeros((len(idx), max(len(waves[i]) for i in idx)), np.float32)
            for row, i in enumerate(idx):
                x[row, : len(waves[i])] = waves[i]
            scores = self.run_batch(x)
            for row, i in enumerate(idx):
                out[i] = scores[row, : self.frames(len(waves[i]))]
        return out  # type: ignore[return-value]

    def transcribe(self, waves: list[np.ndarray], beam: int = 1, batch_size: int = 16) -> list[str]:
        alphabet = self.info.get("alphabet", ALPHABET)  # the model's own, from its metadata
        if beam <= 1:
            return [greedy_decode(lp, alphabet=alphabet) for lp in self.log_probs(waves, batch_size)]
        return [beam_search_decode(lp, beam=beam, alphabet=alphabet) for lp in self.log_probs(waves, batch_size)]
