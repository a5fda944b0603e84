"""Run a trained speech recogniser: waveforms in, per-frame log-probabilities and text out."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sensorium.pipelines.common.artifacts import Artifact, inspect_artifact, load_keras, require_task
from sensorium.pipelines.common.errors import ModelError
from sensorium.pipelines.speech.decode import beam_search_decode, greedy_decode

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
    `transcribe(waves, beam)` -> texts. Backed by a Keras model (run directory or .keras)."""

    run_batch: Callable[[np.ndarray], np.ndarray]  # (B, S) float32 -> (B, T', V) log-probs
    frames: Callable[[int], int]  # samples -> output frames
    info: dict[str, Any]
    source: str

    @classmethod
    def from_artifact(cls, artifact: Artifact | str | Path) -> "SpeechRecognizer":
        if not isinstance(artifact, Artifact):
            artifact = inspect_artifact(artifact)
        require_task(artifact, TASK)
        if artifact.kind not in ("run", "keras"):
            raise ModelError(f"{artifact.path}: speech models run from a run directory or .keras file here "
                             f"(not {artifact.kind})")
        path = artifact.run.model_path if artifact.run is not None else artifact.path
        model = load_keras(path)
        from sensorium.models.blocks.metadata import read_task_metadata

        meta = read_task_metadata(model)
        if meta is None or meta["task"] != TASK:
            raise ModelError(f"{path}: not a Sensorium speech model")
        info = meta["info"]
        return cls(lambda x: np.asarray(model(x, training=False)), lambda n: frames_from_info(info, n), info, str(path))

    def log_probs(self, waves: list[np.ndarray], batch_size: int = 16) -> list[np.ndarray]:
        """Per utterance (T', V) log-probabilities; batches of similar lengths, zero-padded. Clips shorter
        than MIN_SECONDS are padded with silence to it (a 0.1 s file still gets a transcript)."""
        minimum = int(MIN_SECONDS * 16000)
        waves = [w if len(w) >= minimum else np.pad(w, (0, minimum - len(w))) for w in waves]
        out: list[np.ndarray | None] = [None] * len(waves)
        order = np.argsort([len(w) for w in waves], kind="stable")
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
        decode = (lambda lp: greedy_decode(lp)) if beam <= 1 else (lambda lp: beam_search_decode(lp, beam=beam))
        return [decode(lp) for lp in self.log_probs(waves, batch_size)]
