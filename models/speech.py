"""Speech recogniser: log-mel front end -> convolutional subsampling -> (Bi)LSTM -> CTC over characters.

The built model is end to end: ``waveform (B, samples) float32 at 16 kHz`` ->
``log_probs (B, T', V) float32`` (log-softmax over the CTC vocabulary: blank + characters), with
``T' = output_frames(spec, samples)``. The log-mel front end is a layer inside the model, so exported
models take raw waveforms; SpecAugment is active in training only.

Example::

    spec = SpeechRecognizerSpec()             # 80 mel bins, 2 conv layers (4x), 2 BiLSTM layers of 192
    model = build_speech_recognizer(spec, alphabet=" 'abcdefghijklmnopqrstuvwxyz")  # + blank = 29 outputs
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import keras

from sensorium.models.blocks.audio import (
    FrequencyWarp,
    LogMelSpectrogram,
    SpecAugment,
    UtteranceNormalization,
    frames_for_samples,
)
from sensorium.models.blocks.conv import ConvBNAct
from sensorium.models.blocks.metadata import TaskMetadata
from sensorium.models.blocks.recurrent import HoistedLSTM
from sensorium.runtime.speech import SpeechRecognizer

LSTM_LAYERS = {"hoisted": HoistedLSTM, "keras": keras.layers.LSTM}
LOG_OFFSET = 1e-6  # log(mel + LOG_OFFSET): digital silence is log(LOG_OFFSET) in every bin


@dataclass
class SpeechRecognizerSpec:
    """Architecture settings of a speech recogniser (no training settings)."""

    sample_rate: int = 16000
    num_mel_bins: int = 80
    frame_length: int = 400  # 25 ms
    frame_step: int = 160  # 10 ms
    fft_length: int = 512
    conv_channels: tuple[int, ...] = (32, 32)  # one stride-2 (time and frequency) conv per entry
    rnn_units: int = 192
    rnn_layers: int = 2
    bidirectional: bool = True  # False: unidirectional LSTMs, for streaming
    # "hoisted": `HoistedLSTM`, the input projection as one matmul before the time loop (about 1.1x on
    # the speech training step on 2 CPU cores); "keras": `keras.layers.LSTM`. Same weights and outputs.
    lstm: str = "hoisted"
    dropout: float = 0.2
    # "utterance": per-utterance mean/variance of the log-mel features (removes speaker and channel);
    # "global": the training data's per-bin statistics (models before 0.8)
    normalization: str = "utterance"
    freq_warp: float = 0.1  # vocal-tract-length perturbation in training (0: off)
    spec_augment: dict = field(default_factory=lambda: {"freq_masks": 2, "freq_mask_width": 15, "time_masks": 2,
                                                        "time_mask_fraction": 0.05})


def output_frames(spec: SpeechRecognizerSpec, num_samples: int) -> int:
    """Frames of the model output for `num_samples` input samples (each conv halves, rounding up)."""
    frames = frames_for_samples(num_samples, frame_length=spec.frame_length, frame_step=spec.frame_step)
    for _ in spec.conv_channels:
        frames = math.ceil(frames / 2)
    return frames


def build_speech_recognizer(spec: SpeechRecognizerSpec, alphabet: str, feature_mean=None, feature_variance=None,
                            vocabulary: list[str] | None = None, language_model: dict[str, Any] | None = None,
                            lead_silence: float | None = None, tail_silence: float | None = None,
                            name: str = "speech_recognizer") -> keras.Model:
    """Build ``waveform (B, samples) -> log_probs (B, T', 1 + len(alphabet))``; output id 0 is the CTC
    blank, id i the character ``alphabet[i - 1]``.

    With `spec.normalization == "global"`, `feature_mean` / `feature_variance` (num_mel_bins,)
    normalise the log-mel features (statistics of the training data); without them the normalisation
    layer is left to `adapt` later. The default, "utterance", needs no statistics. `vocabulary`
    (the words of the training transcripts) travels in the metadata as the model's default decoding
    vocabulary (`sensorium.runtime.vocabulary`), and `language_model` (`WordNgramLM.to_dict()` of
    the same transcripts) as its default word language model (`sensorium.runtime.ngram`).
    `lead_silence` (seconds) records that the training clips' leading quiet was cut to that length,
    so that recognisers cut clips the same way (`runtime.speech`, lead_silence "model"), and
    `tail_silence` (seconds) the median trailing quiet of the training clips, which recognisers top
    shorter endings up to (tail_silence "model").
    """
    if not spec.conv_channels:
        raise ValueError("conv_channels must name at least one convolution")
    if spec.rnn_layers < 1 or spec.rnn_units < 1:
        raise ValueError("rnn_layers and rnn_units must be >= 1")
    if spec.lstm not in LSTM_LAYERS:
        raise ValueError(f"lstm must be one of {', '.join(LSTM_LAYERS)}, got {spec.lstm!r}")
    waveform = keras.Input((None,), dtype="float32", name="waveform")  # (B, S)
    x = LogMelSpectrogram(sample_rate=spec.sample_rate, frame_length=spec.frame_length, frame_step=spec.frame_step,
                          fft_length=spec.fft_length, num_mel_bins=spec.num_mel_bins, log_offset=LOG_OFFSET,
                          name="log_mel")(waveform)  # (B, T, F)
    if spec.normalization == "utterance":
        x = UtteranceNormalization(floor=math.log(LOG_OFFSET), name="utterance_normalization")(x)  # (B, T, F)
    elif spec.normalization == "global":
        norm_kwargs: dict[str, Any] = {}
        if feature_mean is not None:
            norm_kwargs = dict(mean=list(map(float, feature_mean)), variance=list(map(float, feature_variance)))
        x = keras.layers.Normalization(axis=-1, name="feature_normalization", **norm_kwargs)(x)  # (B, T, F)
    else:
        raise ValueError(f"normalization must be 'utterance' or 'global', got {spec.normalization!r}")
    if spec.freq_warp:
        x = FrequencyWarp(spec.freq_warp, name="frequency_warp")(x)  # (B, T, F), identity at inference
    if spec.spec_augment:
        x = SpecAugment(**spec.spec_augment, name="spec_augment")(x)  # (B, T, F), identity at inference
    x = keras.layers.Reshape((-1, spec.num_mel_bins, 1), name="add_channel")(x)  # (B, T, F, 1)
    freq = spec.num_mel_bins
    for i, channels in enumerate(spec.conv_channels):
        x = ConvBNAct(int(channels), 3, strides=2, name=f"subsample{i + 1}")(x)  # (B, T/2^i, F/2^i, C)
        freq = math.ceil(freq / 2)
    x = keras.layers.Reshape((-1, freq * int(spec.conv_channels[-1])), name="flatten_freq")(x)  # (B, T', F'C)
    x = keras.layers.Dense(spec.rnn_units, activation="relu", name="project")(x)  # (B, T', U)
    x = keras.layers.Dropout(spec.dropout, name="project_dropout")(x)
    for i in range(spec.rnn_layers):
        lstm = LSTM_LAYERS[spec.lstm](spec.rnn_units, return_sequences=True, name=f"lstm{i + 1}")
        if spec.bidirectional:
            lstm = keras.layers.Bidirectional(lstm, name=f"bilstm{i + 1}")
        x = lstm(x)  # (B, T', U or 2U)
        x = keras.layers.Dropout(spec.dropout, name=f"lstm{i + 1}_dropout")(x)
    logits = keras.layers.Dense(1 + len(alphabet), name="logits", dtype="float32")(x)  # (B, T', V)
    log_probs = keras.layers.Activation("log_softmax", name="log_softmax", dtype="float32")(logits)
    info = {"sample_rate": spec.sample_rate, "alphabet": alphabet, "blank": 0,
            "input": "float32 mono waveform (B, samples) in [-1, 1] at sample_rate",
            "output": "log-probabilities (B, frames, 1 + len(alphabet)); id 0 is the CTC blank",
            "frame_step": spec.frame_step, "frame_length": spec.frame_length,
            "subsampling": 2 ** len(spec.conv_channels), "bidirectional": spec.bidirectional}
    if vocabulary:
        info["vocabulary"] = sorted({str(w) for w in vocabulary})
    if language_model:
        info["language_model"] = dict(language_model)
    if lead_silence is not None:
        info["lead_silence"] = float(lead_silence)
    if tail_silence is not None:
        info["tail_silence"] = float(tail_silence)
    outputs = TaskMetadata(task=SpeechRecognizer.task, labels=None, info=info, name="log_probs")(log_probs)
    return keras.Model(waveform, outputs, name=name)


def ctc_loss(y_true, y_pred):
    """CTC loss for Keras `fit`: `y_true` (B, 1 + L) int32 = [output frame count, labels padded with 0];
    `y_pred` (B, T', V) log-probabilities, blank id 0. Returns (B,) losses."""
    import tensorflow as tf

    y_true = tf.cast(y_true, tf.int32)
    logit_length = tf.minimum(y_true[:, 0], tf.shape(y_pred)[1])  # (B,)
    labels = y_true[:, 1:]  # (B, L)
    label_length = tf.reduce_sum(tf.cast(labels > 0, tf.int32), axis=-1)  # (B,)
    return tf.nn.ctc_loss(labels=labels, logits=tf.cast(y_pred, tf.float32), label_length=label_length,
                          logit_length=logit_length, logits_time_major=False, blank_index=0)
