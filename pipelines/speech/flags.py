"""Command-line options of `sensorium train|tune` for the speech task's config.

Kept apart from the config dataclasses so `sensorium --help` builds every option without importing
TensorFlow.
"""
from __future__ import annotations

from sensorium.pipelines.common.flags import COMMON_TRAIN_FLAGS, Flag, int_list, name_list, yes_no


def levers(text: str) -> list[str]:
    """`speed,reverb` -> ["speed", "reverb"]; `none` -> [] (no augmentation)."""
    return [] if text.strip().lower() == "none" else name_list(text)


# `sensorium train|tune speech` options (each sets one config key; see pipelines/common/flags.py)
FLAGS: tuple[Flag, ...] = COMMON_TRAIN_FLAGS + (
    Flag("--rnn-units", "model.rnn_units", int, "LSTM units per direction"),
    Flag("--rnn-layers", "model.rnn_layers", int, "number of LSTM layers"),
    Flag("--bidirectional", "model.bidirectional", yes_no, "bidirectional LSTMs (no: unidirectional, "
         "for streaming)", metavar="yes|no"),
    Flag("--lstm", "model.lstm", str, "LSTM loop: hoisted (the input projection as one matmul before the "
         "time loop; faster on CPUs) or keras (keras.layers.LSTM); same weights and outputs",
         choices=("hoisted", "keras")),
    Flag("--conv-channels", "model.conv_channels", int_list, "channels of the stride-2 convolutions",
         metavar="C,C,..."),
    Flag("--mel-bins", "model.num_mel_bins", int, "log-mel bins"),
    Flag("--dropout", "model.dropout", float, "dropout after each layer"),
    Flag("--normalization", "model.normalization", str, "log-mel normalisation: utterance (per utterance, in the "
         "model; removes speaker and channel) or global (the training data's statistics)",
         choices=("utterance", "global")),
    Flag("--freq-warp", "model.freq_warp", float, "vocal-tract-length perturbation in training: warp factors "
         "1 +- this (0: off)"),
    Flag("--augment", "augment.levers", levers, "acoustic augmentation levers in training, comma-separated: "
         "speed, pad (up to 0.3 s of silence before the speech), eq, reverb, telephone, noise, babble (these by "
         "default), vocoder (opt-in: LPC resynthesis with a new voice source); 'none' for none",
         metavar="LEVER,..."),
    Flag("--max-seconds", "data.max_seconds", float, "skip training utterances longer than this"),
    Flag("--lead-silence", "data.lead_silence", float, "cut every clip's leading quiet to this many seconds "
         "(training and validation); the model records it and `transcribe` cuts clips the same way",
         metavar="S"),
    Flag("--beam", "beam", int, "decoding beam of the final evaluation (1: greedy)"),
    Flag("--audio-column", "data.audio_column", str, "manifest column holding audio paths"),
    Flag("--text-column", "data.text_column", str, "manifest column holding transcripts"),
)
