"""The speech task's Keras back ends: a run directory, a `.keras` file or a SavedModel behind the
runtime's `SpeechRecognizer` (same interface, records and errors as its `.tflite` path)."""
from __future__ import annotations

from pathlib import Path

from sensorium.pipelines.common.artifacts import Artifact, load_predictor, load_task_model
from sensorium.runtime.errors import ModelError
from sensorium.runtime.speech import SpeechRecognizer


def load(model: Artifact | str | Path) -> SpeechRecognizer:
    """The recogniser of any speech artifact (run directory, .keras, SavedModel, .tflite)."""
    return load_predictor(model, SpeechRecognizer, keras=_from_keras, saved_model=_from_saved_model)


def _one_at_a_time(info: dict) -> int | None:
    """A bidirectional model reads each utterance alone: zero padding after a shorter utterance would
    reach its frames through the backward LSTM (the exported files take one waveform per call too)."""
    return 1 if info.get("bidirectional", True) else None


def _from_keras(artifact: Artifact) -> SpeechRecognizer:
    import tensorflow as tf

    model, meta = load_task_model(artifact.keras_path, SpeechRecognizer.task)
    info = meta["info"]
    fn = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec((None, None), tf.float32)],
                     reduce_retracing=True)  # one graph for every length: eager LSTMs step in Python
    return SpeechRecognizer(lambda x: fn(tf.constant(x)).numpy(), info, str(artifact.keras_path),
                            max_batch=_one_at_a_time(info))


def _from_saved_model(artifact: Artifact) -> SpeechRecognizer:
    import tensorflow as tf

    try:
        serve = tf.saved_model.load(str(artifact.path)).signatures["serving_default"]
    except (KeyError, OSError, ValueError) as exc:
        raise ModelError(f"{artifact.path}: unusable SavedModel ({str(exc).splitlines()[0][:200]})") from None
    keys = ("frame_length", "frame_step", "subsampling", "alphabet", "bidirectional", "vocabulary", "language_model",
            "lead_silence", "tail_silence")
    info = {k: artifact.info[k] for k in keys if k in artifact.info}
    return SpeechRecognizer(lambda x: serve(waveform=tf.constant(x))["log_probs"].numpy(), info, str(artifact.path),
                            max_batch=_one_at_a_time(info), runtime="saved_model")
