"""Command-line options of `sensorium train|tune` for the translation task's config.

Kept apart from the config dataclasses so `sensorium --help` builds every option without importing
TensorFlow.
"""
from __future__ import annotations

from sensorium.pipelines.common.flags import COMMON_TRAIN_FLAGS, Flag, yes_no

# `sensorium train|tune translation` options (each sets one config key; see pipelines/common/flags.py)
FLAGS: tuple[Flag, ...] = COMMON_TRAIN_FLAGS + (
    Flag("--language", "data.language", str, "folders of .po/.mo catalogues: the language to read (de, pt_BR)"),
    Flag("--source-language", "data.source_language", str, "TFDS translation data: the source language key"),
    Flag("--target-language", "data.target_language", str, "TFDS translation data: the target language key"),
    Flag("--vocab-size", "model.vocab_size", int, "subword pieces per tokenizer"),
    Flag("--shared-vocab", "model.shared_vocab", yes_no, "one tokenizer for both languages (no: one each)",
         metavar="yes|no"),
    Flag("--embed-dim", "model.embed_dim", int, "Transformer width"),
    Flag("--num-heads", "model.num_heads", int, "attention heads"),
    Flag("--ff-dim", "model.ff_dim", int, "feed-forward width"),
    Flag("--encoder-layers", "model.encoder_layers", int, "encoder layers"),
    Flag("--decoder-layers", "model.decoder_layers", int, "decoder layers"),
    Flag("--dropout", "model.dropout", float, "dropout"),
    Flag("--max-source-length", "model.max_source_length", int, "source tokens read"),
    Flag("--max-target-length", "model.max_target_length", int, "target tokens generated at most"),
    Flag("--label-smoothing", "train.label_smoothing", float, "label smoothing of the token loss"),
    Flag("--beam", "beam", int, "beam of the final evaluation (1: greedy)"),
)
