"""Command-line options of `sensorium train|tune` for the sentiment task's config.

Kept apart from the config dataclasses so `sensorium --help` builds every option without importing
TensorFlow.
"""
from __future__ import annotations

from sensorium.pipelines.common.flags import COMMON_TRAIN_FLAGS, Flag, yes_no

# `sensorium train|tune sentiment` options (each sets one config key; see pipelines/common/flags.py)
FLAGS: tuple[Flag, ...] = COMMON_TRAIN_FLAGS + (
    Flag("--text-column", "data.text_column", str, "CSV/TSV column holding the texts"),
    Flag("--label-column", "data.label_column", str, "CSV/TSV column holding the labels"),
    Flag("--encoder", "model.encoder", str, "transformer (trained from scratch) or hub:NAME|HANDLE, a TF Hub "
         "text encoder taking strings (nnlm-en-dim50, nnlm-en-dim128, universal-sentence-encoder, a URL or a "
         "folder)", metavar="transformer|hub:H"),
    Flag("--max-length", "model.max_length", int, "tokens read per text (longer texts are cut)"),
    Flag("--vocab-size", "model.vocab_size", int, "subword pieces the tokenizer may learn"),
    Flag("--embed-dim", "model.embed_dim", int, "Transformer width"),
    Flag("--num-heads", "model.num_heads", int, "attention heads"),
    Flag("--ff-dim", "model.ff_dim", int, "feed-forward width"),
    Flag("--layers", "model.num_layers", int, "Transformer encoder layers"),
    Flag("--dropout", "model.dropout", float, "dropout inside the encoder"),
    Flag("--lexicon", "model.lexicon", str, "sentence features from human-rated sentiment lexicons, computed "
         "inside the model (transformer encoder)", choices=("none", "vader+afinn")),
    Flag("--branch-dropout", "model.branch_dropout", float, "fraction of training texts whose Transformer vector "
         "is dropped, so the head also learns from the lexicon features alone"),
    Flag("--class-weights", "train.class_weights", yes_no, "weight the loss by inverse label frequency",
         metavar="yes|no"),
    Flag("--label-smoothing", "train.label_smoothing", float, "share of each text's target spread evenly over "
         "the labels (0 = plain cross-entropy)"),
    Flag("--text-normalization", "model.text_normalization", str, "what the model does to a text before "
         "tokenising it: none, or neutral-v1 (links removed, @handles become @user; kept in every export)",
         metavar="none|neutral-v1"),
    Flag("--expert", "train.expert", str, "what the binary head's lexicon expert hears besides VADER: auto "
         "(vader from scratch; vader+opinion+words with --init-from: Hu and Liu's opinion lexicon and the words "
         "of your labelled texts)", choices=("auto", "vader", "vader+opinion", "vader+opinion+words")),
    Flag("--init-from", "train.init_from", str, "continue training a sentiment model (bundled name, run directory "
         "or .keras) on this data: its tokenizer, labels and model settings are kept", metavar="MODEL"),
)
