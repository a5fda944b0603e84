"""Transformer building blocks for text models: embeddings, pre-norm encoder/decoder layers, pooling.

Masks are passed explicitly (no Keras implicit masking): ``padding_mask`` turns token ids into a
bool (B, L) mask, ``attention_mask`` turns query/key masks into the bool (B, Lq, Lk) mask that
``keras.layers.MultiHeadAttention`` takes as ``attention_mask=``. Every length is read at run time
(``keras.ops.shape``), and the causal mask is an integer-range comparison rather than a triangular
op (``tf.linalg.band_part``), so models using these blocks convert to TFLite builtins with dynamic
sequence lengths.

The attention layers use no dropout on the attention probabilities: Keras then computes attention
with ``keras.ops.dot_product_attention``, which takes the logits and softmax in float32 also under a
mixed-precision policy. Dropout is applied to each sub-layer's output before its residual add.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def padding_mask(ids, pad_id: int = 0):
    """Token ids (B, L) -> bool (B, L), True where a real (non-``pad_id``) token is."""
    return ops.not_equal(ids, ops.cast(pad_id, ids.dtype))  # (B, L)


def attention_mask(query_mask, key_mask, causal: bool = False):
    """Query mask (B, Lq) and key mask (B, Lk) -> bool (B, Lq, Lk) attention mask.

    Entry [b, i, j] is True when query i may attend to key j: key j is a real position and, with
    ``causal``, j <= i. ``query_mask`` supplies the batch size and Lq; its values are not used, so a
    padded query row attends like a real one (its output is ignored downstream) and a row is fully
    masked only when every key it could see is padding. Keras' attention stays finite (no NaN) for
    such rows. The masks may be bool or numeric (non-zero = real).
    """
    key_mask = ops.cast(key_mask, "bool")  # (B, Lk)
    query_shape = ops.shape(query_mask)
    batch, query_length = query_shape[0], query_shape[1]
    key_length = ops.shape(key_mask)[1]
    keys = ops.expand_dims(key_mask, 1)  # (B, 1, Lk)
    if causal:
        rows = ops.expand_dims(ops.arange(query_length), 1)  # (Lq, 1)
        cols = ops.expand_dims(ops.arange(key_length), 0)  # (1, Lk)
        allowed = ops.greater_equal(rows, cols)  # (Lq, Lk): j <= i
        return ops.logical_and(ops.expand_dims(allowed, 0), keys)  # (B, Lq, Lk)
    return ops.broadcast_to(keys, (batch, query_length, key_length))  # (B, Lq, Lk)


def _all_real(x):
    """An all-True (B, L) mask for a (B, L, D) tensor."""
    shape = ops.shape(x)
    return ops.ones((shape[0], shape[1]), dtype="bool")  # (B, L)


@keras.saving.register_keras_serializable(package="sensorium")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token ids (B, L) -> token embedding + learned position embedding (B, L, D).

    Positions are ``0..L-1`` with L read at run time: rows ``[:L]`` of a (max_length, D) table are
    added, so L may vary from call to call (L <= ``max_length`` is the caller's job). Token
    embeddings are not scaled by sqrt(D): both tables are learned and start at the same scale
    (Keras' default uniform(-0.05, 0.05)), so neither dominates the sum at initialisation.
    """

    def __init__(self, vocab_size: int, max_length: int, embed_dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.max_length = int(max_length)
        self.embed_dim = int(embed_dim)
        if min(self.vocab_size, self.max_length, self.embed_dim) < 1:
            raise ValueError("vocab_size, max_length and embed_dim must be >= 1, got "
                             f"{vocab_size}, {max_length}, {embed_dim}")
        self.token_embedding = keras.layers.Embedding(
            self.vocab_size, self.embed_dim, dtype=self.dtype_policy, name="token_embedding"
        )

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != 2:
            raise ValueError(f"TokenAndPositionEmbedding expects ids (B, L), got shape {input_shape}")
        self.token_embedding.build(input_shape)
        self.position_embeddings = self.add_weight(
            shape=(self.max_length, self.embed_dim), initializer="uniform", name="position_embeddings"
        )  # (max_length, D)

    def call(self, ids):
        length = ops.shape(ids)[1]
        tokens = self.token_embedding(ids)  # (B, L, D)
        positions = ops.slice(self.position_embeddings, (0, 0), (length, self.embed_dim))  # (L, D)
        return tokens + ops.cast(positions, tokens.dtype)[None]  # (B, L, D)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape, self.embed_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, max_length=self.max_length, embed_dim=self.embed_dim)
        return config


class _ExplicitMaskLayer(keras.layers.Layer):
    """A layer taking its mask as an explicit ``mask=`` argument and attaching none to its output.

    Overriding ``compute_mask`` marks the layer as mask-aware, so Keras does not warn that a mask
    passed as ``mask=`` is being "destroyed"; returning None keeps Keras from propagating it (to a
    loss, say) behind the caller's back.
    """

    def compute_mask(self, inputs, mask=None):
        return None


class _TransformerLayer(_ExplicitMaskLayer):
    """Shared config and feed-forward sub-block of the encoder and decoder layers."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        ff_dim: int,
        dropout: float = 0.1,
        activation: str = "gelu",
        layer_norm_epsilon: float = 1e-5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.embed_dim = int(embed_dim)
        self.num_heads = int(num_heads)
        self.ff_dim = int(ff_dim)
        self.dropout = float(dropout)
        self.activation = activation
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        if min(self.embed_dim, self.num_heads, self.ff_dim) < 1:
            raise ValueError("embed_dim, num_heads and ff_dim must be >= 1")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        policy = self.dtype_policy
        self.ffn_norm = self._norm("ffn_norm")
        self.ffn_in = keras.layers.Dense(self.ff_dim, activation=self.activation, dtype=policy, name="ffn_in")
        self.ffn_out = keras.layers.Dense(self.embed_dim, dtype=policy, name="ffn_out")
        self.ffn_dropout = self._dropout("ffn_dropout")

    def _norm(self, name: str) -> keras.layers.LayerNormalization:
        return keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name)

    def _dropout(self, name: str) -> keras.layers.Dropout:
        return keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name=name)

    def _attention(self, name: str) -> keras.layers.MultiHeadAttention:
        # No dropout on the attention probabilities: Keras then takes the fused
        # dot_product_attention path (float32 logits and softmax).
        return keras.layers.MultiHeadAttention(
            self.num_heads, self.embed_dim // self.num_heads, dtype=self.dtype_policy, name=name
        )

    def _check_shape(self, shape: tuple, what: str) -> None:
        if len(shape) != 3 or (shape[-1] is not None and shape[-1] != self.embed_dim):
            raise ValueError(
                f"{type(self).__name__} expects {what} (B, L, {self.embed_dim}), got shape {shape}"
            )

    def _build_ffn(self, shape: tuple) -> None:
        self.ffn_norm.build(shape)
        self.ffn_in.build(shape)
        self.ffn_out.build((*shape[:-1], self.ff_dim))

    def _ffn(self, x, training: bool | None):
        h = self.ffn_norm(x)  # (B, L, D)
        h = self.ffn_out(self.ffn_in(h))  # (B, L, F) -> (B, L, D)
        return x + self.ffn_dropout(h, training=training)  # (B, L, D)

    def compute_output_shape(self, x_shape: tuple, *args: Any) -> tuple:
        return tuple(x_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            embed_dim=self.embed_dim,
            num_heads=self.num_heads,
            ff_dim=self.ff_dim,
            dropout=self.dropout,
            activation=self.activation,
            layer_norm_epsilon=self.layer_norm_epsilon,
        )
        return config


@keras.saving.register_keras_serializable(package="sensorium")
class TransformerEncoder(_TransformerLayer):
    """Pre-norm Transformer encoder layer: (B, L, D) -> (B, L, D).

    ``x + Dropout(MHA(LN(x)))``, then ``x + Dropout(Dense(D)(Dense(ff_dim, activation)(LN(x))))``.
    ``mask`` (B, L) bool marks real positions: no position attends to padding, so outputs at real
    positions do not depend on what is at padded ones (padded positions' outputs are meaningless).
    No final LayerNorm: add one after the last layer.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        ff_dim: int,
        dropout: float = 0.1,
        activation: str = "gelu",
        layer_norm_epsilon: float = 1e-5,
        **kwargs: Any,
    ) -> None:
        super().__init__(embed_dim, num_heads, ff_dim, dropout, activation, layer_norm_epsilon, **kwargs)
        self.attention_norm = self._norm("attention_norm")
        self.self_attention = self._attention("self_attention")
        self.attention_dropout = self._dropout("attention_dropout")

    def build(self, input_shape: tuple) -> None:
        self._check_shape(input_shape, "x")
        self.attention_norm.build(input_shape)
        self.self_attention.build(input_shape, input_shape)
        self._build_ffn(input_shape)

    def call(self, x, mask=None, training: bool | None = None):
        # x: (B, L, D); mask: (B, L) bool or None (all positions real)
        attn_mask = None if mask is None else attention_mask(mask, mask)  # (B, L, L)
        h = self.attention_norm(x)  # (B, L, D)
        h = self.self_attention(h, h, attention_mask=attn_mask, training=training)  # (B, L, D)
        x = x + self.attention_dropout(h, training=training)  # (B, L, D)
        return self._ffn(x, training)  # (B, L, D)


@keras.saving.register_keras_serializable(package="sensorium")
class TransformerDecoder(_TransformerLayer):
    """Pre-norm Transformer decoder layer: target (B, T, D) and encoder context (B, S, D) -> (B, T, D).

    Causal self-attention, then cross-attention over ``context``, then the feed-forward block, each
    as ``x + Dropout(sublayer(LN(x)))``. Position t sees target positions <= t that are real
    (``mask``) and context positions that are real (``context_mask``). No final LayerNorm.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        ff_dim: int,
        dropout: float = 0.1,
        activation: str = "gelu",
        layer_norm_epsilon: float = 1e-5,
        **kwargs: Any,
    ) -> None:
        super().__init__(embed_dim, num_heads, ff_dim, dropout, activation, layer_norm_epsilon, **kwargs)
        self.self_attention_norm = self._norm("self_attention_norm")
        self.self_attention = self._attention("self_attention")
        self.self_attention_dropout = self._dropout("self_attention_dropout")
        self.cross_attention_norm = self._norm("cross_attention_norm")
        self.cross_attention = self._attention("cross_attention")
        self.cross_attention_dropout = self._dropout("cross_attention_dropout")

    def build(self, x_shape: tuple, context_shape: tuple) -> None:
        self._check_shape(x_shape, "x")
        self._check_shape(context_shape, "context")
        self.self_attention_norm.build(x_shape)
        self.self_attention.build(x_shape, x_shape)
        self.cross_attention_norm.build(x_shape)
        self.cross_attention.build(x_shape, context_shape)
        self._build_ffn(x_shape)

    def call(self, x, context, mask=None, context_mask=None, training: bool | None = None):
        # x: (B, T, D); context: (B, S, D); mask: (B, T) bool or None; context_mask: (B, S) bool or None
        target_mask = _all_real(x) if mask is None else mask  # (B, T)
        self_mask = attention_mask(target_mask, target_mask, causal=True)  # (B, T, T)
        h = self.self_attention_norm(x)  # (B, T, D)
        h = self.self_attention(h, h, attention_mask=self_mask, training=training)  # (B, T, D)
        x = x + self.self_attention_dropout(h, training=training)  # (B, T, D)

        cross_mask = None  # (B, T, S)
        if context_mask is not None:
            cross_mask = attention_mask(target_mask, context_mask)
        h = self.cross_attention_norm(x)  # (B, T, D)
        h = self.cross_attention(h, context, attention_mask=cross_mask, training=training)  # (B, T, D)
        x = x + self.cross_attention_dropout(h, training=training)  # (B, T, D)
        return self._ffn(x, training)  # (B, T, D)


@keras.saving.register_keras_serializable(package="sensorium")
class MaskedMeanPooling(_ExplicitMaskLayer):
    """(B, L, D) and mask (B, L) -> (B, D): mean over the real positions.

    A row with no real position gives zeros. Values at padded positions are ignored entirely (even
    inf/NaN). The sum runs in float32 whatever the dtype policy; the output has the layer's compute
    dtype. With ``mask=None`` it is the plain mean over L.
    """

    def call(self, x, mask=None):
        # x: (B, L, D); mask: (B, L) bool/numeric or None
        values = ops.cast(x, "float32")  # (B, L, D)
        if mask is None:
            return ops.cast(ops.mean(values, axis=1), self.compute_dtype)  # (B, D)
        real = ops.expand_dims(ops.cast(mask, "bool"), -1)  # (B, L, 1)
        total = ops.sum(ops.where(real, values, 0.0), axis=1)  # (B, D)
        count = ops.sum(ops.cast(real, "float32"), axis=1)  # (B, 1)
        return ops.cast(total / ops.maximum(count, 1.0), self.compute_dtype)  # (B, D)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], input_shape[-1])
