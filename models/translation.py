"""Translator: a Transformer encoder-decoder over subword ids (the shared text blocks).

Three Keras models share the weights:

- ``encoder``: source ids (B, S) int32, 0 = padding -> memory (B, S, D);
- ``decoder``: memory (B, S, D), source ids (B, S) (for the padding mask) and target ids (B, T)
  starting with BOS -> next-token logits (B, T, V) float32;
- the training model: (source ids, target ids) -> logits, with the task metadata.

Decoding calls ``encoder`` once and ``decoder`` once per generated token (on the whole prefix;
UI strings are short, so no key/value cache is kept, which keeps the TFLite ``decode_step`` a
plain builtin-ops graph).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sensorium.runtime.translation import Translator

if TYPE_CHECKING:
    import keras

TASK = Translator.task  # the metadata names the task whose runtime predictor runs the model


@dataclass
class TranslatorSpec:
    """Architecture of a translator (the `model` section of a translation config)."""

    max_source_length: int = 128  # source tokens read ([BOS] included); longer sources are cut
    max_target_length: int = 128  # target tokens generated at most (plus EOS)
    vocab_size: int = 8000  # subword pieces per tokenizer (fewer on a small corpus)
    shared_vocab: bool = True  # one tokenizer for both languages, else one each
    embed_dim: int = 256
    num_heads: int = 4
    ff_dim: int = 1024
    encoder_layers: int = 3
    decoder_layers: int = 3
    dropout: float = 0.1


def build_translator(spec: TranslatorSpec, *, source_vocab: int, target_vocab: int,
                     info: dict[str, Any] | None = None) -> keras.Model:
    """The training model (source ids, target ids) -> logits; `model.get_layer("encoder")` and
    `model.get_layer("decoder")` are the inference halves."""
    import keras

    from sensorium.models.blocks import TaskMetadata
    from sensorium.models.blocks.transformer import (
        TokenAndPositionEmbedding,
        TransformerDecoder,
        TransformerEncoder,
        padding_mask,
    )

    d = spec.embed_dim
    src = keras.Input((None,), dtype="int32", name="source_ids")  # (B, S)
    x = TokenAndPositionEmbedding(source_vocab, spec.max_source_length, d, name="source_embedding")(src)  # (B, S, D)
    x = keras.layers.Dropout(spec.dropout, name="source_dropout")(x)
    src_mask = padding_mask(src)  # (B, S)
    for i in range(spec.encoder_layers):
        x = TransformerEncoder(d, spec.num_heads, spec.ff_dim, dropout=spec.dropout,
                               name=f"encoder{i}")(x, mask=src_mask)
    memory = keras.layers.LayerNormalization(epsilon=1e-6, name="encoder_norm")(x)  # (B, S, D)
    encoder = keras.Model(src, memory, name="encoder")

    mem_in = keras.Input((None, d), name="memory")  # (B, S, D)
    src_in = keras.Input((None,), dtype="int32", name="source_ids")  # (B, S)
    tgt = keras.Input((None,), dtype="int32", name="target_ids")  # (B, T)
    y = TokenAndPositionEmbedding(target_vocab, spec.max_target_length + 1, d,
                                  name="target_embedding")(tgt)  # (B, T, D)
    y = keras.layers.Dropout(spec.dropout, name="target_dropout")(y)
    tgt_mask, ctx_mask = padding_mask(tgt), padding_mask(src_in)  # (B, T), (B, S)
    for i in range(spec.decoder_layers):
        y = TransformerDecoder(d, spec.num_heads, spec.ff_dim, dropout=spec.dropout,
                               name=f"decoder{i}")(y, mem_in, mask=tgt_mask, context_mask=ctx_mask)  # (B, T, D)
    y = keras.layers.LayerNormalization(epsilon=1e-6, name="decoder_norm")(y)
    logits = keras.layers.Dense(target_vocab, dtype="float32", name="logits")(y)  # (B, T, V)
    decoder = keras.Model([mem_in, src_in, tgt], logits, name="decoder")

    source_ids = keras.Input((None,), dtype="int32", name="source_ids")
    target_ids = keras.Input((None,), dtype="int32", name="target_ids")
    out = decoder([encoder(source_ids), source_ids, target_ids])  # (B, T, V)
    meta = {"max_source_length": spec.max_source_length, "max_target_length": spec.max_target_length,
            "embed_dim": d, **(info or {})}
    out = TaskMetadata(TASK, labels=None, info=meta, name="task_metadata")(out)
    return keras.Model([source_ids, target_ids], out, name="translator")


def _register():
    import keras

    @keras.saving.register_keras_serializable(package="sensorium", name="SmoothedSequenceLoss")
    class SmoothedSequenceLoss(keras.losses.Loss):
        """Token cross-entropy with label smoothing, over real target positions only (id 0 pads).

        y_true (B, T) int, y_pred logits (B, T, V) -> one scalar: the mean over real tokens of the batch."""

        def __init__(self, label_smoothing: float = 0.1, name: str = "smoothed_sequence_loss", **kwargs: Any) -> None:
            kwargs.pop("reduction", None)
            super().__init__(name=name, reduction="sum", **kwargs)
            self.label_smoothing = float(label_smoothing)

        def call(self, y_true, y_pred):
            from keras import ops

            y_true = ops.cast(y_true, "int32")
            logp = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)  # (B, T, V)
            nll = -ops.take_along_axis(logp, ops.expand_dims(y_true, -1), axis=-1)[..., 0]  # (B, T)
            smooth = -ops.mean(logp, axis=-1)  # (B, T): cross-entropy with the uniform distribution
            loss = (1.0 - self.label_smoothing) * nll + self.label_smoothing * smooth
            mask = ops.cast(ops.not_equal(y_true, 0), "float32")
            return ops.sum(loss * mask) / ops.maximum(ops.sum(mask), 1.0)

        def get_config(self) -> dict[str, Any]:
            return {"label_smoothing": self.label_smoothing, "name": self.name}

    @keras.saving.register_keras_serializable(package="sensorium", name="masked_token_accuracy")
    def masked_token_accuracy(y_true, y_pred):
        """Share of real target tokens (id != 0) predicted exactly (argmax)."""
        from keras import ops

        y_true = ops.cast(y_true, "int32")
        hit = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true), "float32")
        mask = ops.cast(ops.not_equal(y_true, 0), "float32")
        return ops.sum(hit * mask) / ops.maximum(ops.sum(mask), 1.0)

    return SmoothedSequenceLoss, masked_token_accuracy


_REGISTERED: tuple | None = None


def training_objects() -> tuple[Any, Any]:
    """(SmoothedSequenceLoss class, masked_token_accuracy), registered for saving and loading."""
    global _REGISTERED
    if _REGISTERED is None:
        _REGISTERED = _register()
    return _REGISTERED
