"""Command-line options of `sensorium train|tune` for the translation task's config.

Kept apart from the config dataclasses so `sensorium --help` builds every option without importing
TensorFlow.
"""
from __future__ import annotations

from sensorium.pipelines.common.flags import COMMON_TRAIN_FLAGS, Flag, float_list, yes_no

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
    Flag("--eval-every", "train.eval_every_steps", int,
         "validation chrF and a checkpoint every N training steps (0: at each epoch's end)", metavar="N"),
    Flag("--eval-pairs", "train.eval_pairs", int, "validation pairs decoded (greedily) for chrF (0: none)"),
    Flag("--chrf-min-gain", "train.chrf_min_gain", float, "stop when validation chrF gains less than this ..."),
    Flag("--chrf-patience", "train.chrf_patience", int, "... over this many evaluations in a row (0: never)"),
    Flag("--max-hours", "train.max_hours", float, "stop training after this many hours (resumes count)"),
    Flag("--keep-checkpoints", "train.keep_checkpoints", int, "step checkpoints kept (at least 2)"),
    Flag("--average-last", "train.average_last", int, "the model is the mean of the last K checkpoints (K >= 2)",
         metavar="K"),
    Flag("--length-penalty-grid", "train.length_penalty_grid", float_list, "at the end, choose beam search's "
         "length penalty from these on validation pairs and record it in the model", metavar="A,B,..."),
    Flag("--length-penalty-pairs", "train.length_penalty_pairs", int, "validation pairs for that choice"),
    Flag("--init-from", "train.init_from", str, "warm start from this translator (bundled name, run directory "
         "or .keras) when the architecture is the same", metavar="MODEL"),
)
