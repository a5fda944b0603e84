"""Transformer blocks: masks, padding/causal independence, pooling, serialisation, TFLite builtins."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import sensorium.models.blocks as blocks
from sensorium.models.blocks import (
    MaskedMeanPooling,
    TokenAndPositionEmbedding,
    TransformerDecoder,
    TransformerEncoder,
    attention_mask,
    padding_mask,
)

D, HEADS, FF, VOCAB, MAX_LEN = 16, 2, 32, 50, 32


def _np(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def _ids(lengths: list[int], width: int, seed: int = 0) -> np.ndarray:
    """int32 (B, width): random real ids 1..VOCAB-1 then padding (0) up to width."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(lengths), width), np.int32)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(1, VOCAB, n)
    return ids


def _vectors(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# ------------------------------------------------------------------------------------------- masks


def test_padding_mask():
    ids = np.array([[4, 9, 0, 0], [0, 0, 0, 0]], np.int32)
    np.testing.assert_array_equal(_np(padding_mask(ids)), ids != 0)
    np.testing.assert_array_equal(_np(padding_mask(ids, pad_id=9)), ids != 9)
    assert _np(padding_mask(ids)).dtype == bool


def test_attention_mask_values():
    query = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)  # (2, 4)
    key = np.array([[1, 1, 1, 0], [1, 0, 1, 0]], bool)  # (2, 4)
    causal = _np(attention_mask(query, key, causal=True))
    expected = np.array([
        [[1, 0, 0, 0],
         [1, 1, 0, 0],
         [1, 1, 1, 0],
         [1, 1, 1, 0]],  # padded query row: its causal window, padded keys removed
        [[1, 0, 0, 0],
         [1, 0, 0, 0],
         [1, 0, 1, 0],
         [1, 0, 1, 0]],
    ], bool)
    assert causal.dtype == bool and causal.shape == (2, 4, 4)
    np.testing.assert_array_equal(causal, expected)

    # Non-causal, Lq != Lk (cross-attention): every query row is the key mask; numeric masks work.
    cross = _np(attention_mask(np.ones((2, 3), "float32"), key.astype("int32")))
    assert cross.dtype == bool and cross.shape == (2, 3, 4)
    np.testing.assert_array_equal(cross, np.broadcast_to(key[:, None, :], (2, 3, 4)))

    # Causal with Lq < Lk: position i sees keys 0..i only.
    short = _np(attention_mask(np.ones((1, 2), bool), np.ones((1, 3), bool), causal=True))
    np.testing.assert_array_equal(short[0], [[1, 0, 0], [1, 1, 0]])


def test_attention_mask_with_dynamic_lengths():
    """Lengths unknown at trace time (as in an exported model)."""
    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.bool)] * 2, autograph=False)
    def fn(query, key):
        return attention_mask(query, key, causal=True)

    for n in (1, 3, 6):
        mask = np.ones((1, n), bool)
        np.testing.assert_array_equal(fn(mask, mask).numpy()[0], np.tril(np.ones((n, n), bool)))


# -------------------------------------------------------------------------------------- embeddings


def test_token_and_position_embedding():
    layer = TokenAndPositionEmbedding(VOCAB, MAX_LEN, D)
    ids = _ids([5, 3], 7)
    out = _np(layer(ids))
    assert out.shape == (2, 7, D)
    tokens = _np(layer.token_embedding.embeddings)
    positions = _np(layer.position_embeddings)
    assert positions.shape == (MAX_LEN, D)
    np.testing.assert_allclose(out, tokens[ids] + positions[None, :7], rtol=1e-6, atol=1e-7)
    # Dynamic length in a functional model: the same table rows for any L <= MAX_LEN.
    model = keras.Sequential([keras.Input((None,), dtype="int32"), layer])
    for n in (1, 9, MAX_LEN):
        ids = _ids([n], n, seed=n)
        np.testing.assert_allclose(model.predict(ids, verbose=0), tokens[ids] + positions[None, :n], atol=1e-6)


# ---------------------------------------------------------------------------------------- encoder


def _encoder_on_vectors(dropout: float = 0.1) -> keras.Model:
    x = keras.Input((None, D), name="x")
    mask = keras.Input((None,), dtype="bool", name="mask")
    return keras.Model([x, mask], TransformerEncoder(D, HEADS, FF, dropout=dropout)(x, mask=mask))


def _text_encoder() -> keras.Model:
    ids = keras.Input((None,), dtype="int32", name="ids")
    x = TokenAndPositionEmbedding(VOCAB, MAX_LEN, D, name="embedding")(ids)
    x = TransformerEncoder(D, HEADS, FF, name="encoder0")(x, mask=padding_mask(ids))
    x = TransformerEncoder(D, HEADS, FF, name="encoder1")(x, mask=padding_mask(ids))
    return keras.Model(ids, x)


def test_encoder_ignores_padded_positions():
    model = _encoder_on_vectors()
    lengths = [6, 3, 9]
    x1 = _vectors((3, 9, D), seed=1)
    mask = np.arange(9)[None, :] < np.array(lengths)[:, None]  # (3, 9)
    x2 = np.where(mask[..., None], x1, 100.0 * _vectors((3, 9, D), seed=2))  # other padding values
    y1 = model.predict([x1, mask], verbose=0)
    y2 = model.predict([x2, mask], verbose=0)
    assert y1.shape == (3, 9, D) and np.isfinite(y1).all()
    np.testing.assert_allclose(y1[mask], y2[mask], atol=1e-5)
    # The check has teeth: without the mask, the real positions do see the padding.
    all_real = np.ones_like(mask)
    y1_unmasked = model.predict([x1, all_real], verbose=0)
    y2_unmasked = model.predict([x2, all_real], verbose=0)
    assert np.abs(y1_unmasked[mask] - y2_unmasked[mask]).max() > 1e-2


def test_encoder_padded_equals_unpadded():
    """A sentence alone (length n) and padded to a longer length give the same real outputs."""
    model = _text_encoder()
    padded = _ids([5, 1, 12, 0], 23, seed=3)  # includes an all-padding row
    out = model.predict(padded, verbose=0)
    assert out.shape == (4, 23, D)
    assert np.isfinite(out).all()  # an all-padding row gives no NaN
    for row, n in enumerate([5, 1, 12]):
        alone = model.predict(padded[row : row + 1, :n], verbose=0)
        np.testing.assert_allclose(out[row, :n], alone[0], atol=1e-5)


def test_encoder_mask_none_is_all_real():
    layer = TransformerEncoder(D, HEADS, FF)
    x = _vectors((2, 5, D))
    np.testing.assert_allclose(_np(layer(x)), _np(layer(x, mask=np.ones((2, 5), bool))), atol=1e-6)


# ---------------------------------------------------------------------------------------- decoder


def _decoder_on_vectors() -> keras.Model:
    x = keras.Input((None, D), name="x")
    context = keras.Input((None, D), name="context")
    context_mask = keras.Input((None,), dtype="bool", name="context_mask")
    y = TransformerDecoder(D, HEADS, FF)(x, context, context_mask=context_mask)
    return keras.Model([x, context, context_mask], y)


def test_decoder_is_causal():
    model = _decoder_on_vectors()
    T, S = 7, 5
    x = _vectors((1, T, D), seed=4)
    context = _vectors((1, S, D), seed=5)
    context_mask = np.ones((1, S), bool)
    base = model.predict([x, context, context_mask], verbose=0)
    assert base.shape == (1, T, D)
    for t in range(T):
        changed = x.copy()
        changed[0, t:] = _vectors((T - t, D), seed=10 + t)  # positions t..T-1 change
        out = model.predict([changed, context, context_mask], verbose=0)
        np.testing.assert_allclose(out[0, :t], base[0, :t], atol=1e-5)  # the past does not see them
        assert np.abs(out[0, t] - base[0, t]).max() > 1e-2  # position t sees itself


def test_decoder_target_padding_and_context_padding():
    model = _decoder_on_vectors()
    x = _vectors((2, 6, D), seed=6)
    context = _vectors((2, 8, D), seed=7)
    context_mask = np.arange(8)[None, :] < np.array([[5], [2]])  # (2, 8)
    other = np.where(context_mask[..., None], context, 50.0 * _vectors((2, 8, D), seed=8))
    base = model.predict([x, context, context_mask], verbose=0)
    out = model.predict([x, other, context_mask], verbose=0)
    np.testing.assert_allclose(out, base, atol=1e-5)
    # The check has teeth: with every context position real, the padded values matter.
    all_real = np.ones_like(context_mask)
    diff = model.predict([x, context, all_real], verbose=0) - model.predict([x, other, all_real], verbose=0)
    assert np.abs(diff).max() > 1e-2

    # Target padding (mask=) and an all-padding context row: finite, and real outputs unchanged
    # when the sequence is trimmed to its real length.
    layer = TransformerDecoder(D, HEADS, FF)
    target_mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]], bool)
    empty_context = np.zeros((2, 8), bool)
    y = _np(layer(x, context, mask=target_mask, context_mask=empty_context))
    assert np.isfinite(y).all()
    y = _np(layer(x, context, mask=target_mask, context_mask=context_mask))
    trimmed = _np(layer(x[1:, :2], context[1:, :2], mask=target_mask[1:, :2], context_mask=context_mask[1:, :2]))
    np.testing.assert_allclose(y[1, :2], trimmed[0], atol=1e-5)


# ----------------------------------------------------------------------------------------- pooling


def test_masked_mean_pooling_values():
    x = _vectors((3, 5, 4), seed=9)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], bool)
    x[0, 3:] = np.inf  # values at padded positions are ignored, even non-finite ones
    x[2] = np.nan
    out = _np(MaskedMeanPooling()(x, mask=mask))
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out[0], x[0, :3].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(out[1], x[1].mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(out[2], np.zeros(4, np.float32))  # all padding -> zeros, no NaN
    np.testing.assert_allclose(_np(MaskedMeanPooling()(x[1:2])), x[1:2].mean(axis=1), rtol=1e-6)


def test_masked_mean_pooling_float16():
    layer = MaskedMeanPooling(dtype="mixed_float16")
    x = np.full((2, 6, 3), 60000.0, np.float16)  # a float16 sum would overflow to inf
    mask = np.array([[1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]], bool)
    out = _np(layer(x, mask=mask))
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, [[60000.0] * 3, [0.0] * 3])


def test_mixed_precision_blocks_are_finite():
    """float16 compute: finite outputs also for an all-padding sequence."""
    policy = "mixed_float16"
    ids = _ids([4, 0], 6, seed=11)
    target = _ids([3, 5], 5, seed=12)
    embed = TokenAndPositionEmbedding(VOCAB, MAX_LEN, D, dtype=policy)
    context = TransformerEncoder(D, HEADS, FF, dtype=policy)(embed(ids), mask=padding_mask(ids))
    y = TransformerDecoder(D, HEADS, FF, dtype=policy)(
        embed(target), context, mask=padding_mask(target), context_mask=padding_mask(ids))
    pooled = MaskedMeanPooling(dtype=policy)(y, mask=padding_mask(target))
    for tensor in (context, y, pooled):
        assert keras.backend.standardize_dtype(tensor.dtype) == "float16"
        assert np.isfinite(_np(tensor)).all()


# ----------------------------------------------------------------------------------- serialisation


def _all_blocks_model() -> keras.Model:
    source = keras.Input((None,), dtype="int32", name="source")
    target = keras.Input((None,), dtype="int32", name="target")
    source_mask, target_mask = padding_mask(source), padding_mask(target)
    context = TokenAndPositionEmbedding(VOCAB, MAX_LEN, D, name="source_embedding")(source)
    context = TransformerEncoder(D, HEADS, FF, dropout=0.2, activation="relu", name="encoder")(
        context, mask=source_mask)
    y = TokenAndPositionEmbedding(VOCAB, MAX_LEN, D, name="target_embedding")(target)
    y = TransformerDecoder(D, HEADS, FF, name="decoder")(y, context, mask=target_mask, context_mask=source_mask)
    logits = keras.layers.Dense(VOCAB, name="logits")(y)
    pooled = MaskedMeanPooling(name="pool")(y, mask=target_mask)
    probabilities = keras.layers.Dense(3, activation="softmax", name="probabilities")(pooled)
    return keras.Model([source, target], [logits, probabilities])


@pytest.mark.parametrize("layer", [
    TokenAndPositionEmbedding(VOCAB, MAX_LEN, D, name="emb"),
    TransformerEncoder(D, HEADS, FF, dropout=0.3, activation="relu", layer_norm_epsilon=1e-6),
    TransformerDecoder(D, HEADS, FF, dropout=0.0),
    MaskedMeanPooling(name="pool"),
], ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer)).get_config() == config


def test_keras_file_round_trip(tmp_path):
    assert blocks.TransformerEncoder is TransformerEncoder  # importing sensorium.models.blocks registers them
    model = _all_blocks_model()
    path = tmp_path / "transformer.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    for name, cls in [("encoder", TransformerEncoder), ("decoder", TransformerDecoder),
                      ("source_embedding", TokenAndPositionEmbedding), ("pool", MaskedMeanPooling)]:
        assert isinstance(loaded.get_layer(name), cls)
        assert loaded.get_layer(name).get_config() == model.get_layer(name).get_config()
    inputs = [_ids([7, 2], 9, seed=13), _ids([4, 6], 6, seed=14)]
    for expected, actual in zip(model.predict(inputs, verbose=0), loaded.predict(inputs, verbose=0), strict=True):
        np.testing.assert_array_equal(actual, expected)


# ------------------------------------------------------------------------------------------ TFLite


def _to_tflite(model: keras.Model, tmp_path, litert):
    export_dir = str(tmp_path / "saved_model")
    model.export(export_dir, format="tf_saved_model", verbose=False)  # input signatures (None, None)
    converter = tf.lite.TFLiteConverter.from_saved_model(export_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # fails if Flex ops are needed
    interpreter = litert.Interpreter(model_content=converter.convert())
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), ops
    return interpreter


def _run_tflite(interpreter, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    details = {d["name"]: d for d in interpreter.get_input_details()}
    for name, value in inputs.items():
        detail = next(d for key, d in details.items() if name in key)
        assert list(detail["shape_signature"]) == [-1, -1]
        interpreter.resize_tensor_input(detail["index"], list(value.shape))
    interpreter.allocate_tensors()
    for name, value in inputs.items():
        detail = next(d for key, d in details.items() if name in key)
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def test_tflite_encoder_classifier_builtins_dynamic_length(tmp_path):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    ids = keras.Input((None,), dtype="int32", name="ids")
    mask = padding_mask(ids)
    x = TokenAndPositionEmbedding(VOCAB, MAX_LEN, D)(ids)
    x = TransformerEncoder(D, HEADS, FF)(x, mask=mask)
    x = MaskedMeanPooling()(x, mask=mask)
    model = keras.Model(ids, keras.layers.Dense(3, activation="softmax")(x))
    interpreter = _to_tflite(model, tmp_path, litert)
    for n in (1, 5, 23):
        x = _ids([n], n, seed=n)
        (out,) = _run_tflite(interpreter, {"ids": x})
        expected = model.predict(x, verbose=0)
        assert out.shape == expected.shape == (1, 3)
        np.testing.assert_allclose(out, expected, atol=1e-4)
    # Padded input: the same probabilities as the unpadded sentence.
    (padded,) = _run_tflite(interpreter, {"ids": _ids([5], 12, seed=5)})
    np.testing.assert_allclose(padded, model.predict(_ids([5], 5, seed=5), verbose=0), atol=1e-4)


def test_tflite_decoder_builtins_dynamic_length(tmp_path):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    source = keras.Input((None,), dtype="int32", name="source")
    target = keras.Input((None,), dtype="int32", name="target")
    context = TokenAndPositionEmbedding(VOCAB, MAX_LEN, D)(source)
    y = TokenAndPositionEmbedding(VOCAB, MAX_LEN, D)(target)
    y = TransformerDecoder(D, HEADS, FF)(y, context, mask=padding_mask(target), context_mask=padding_mask(source))
    model = keras.Model([source, target], keras.layers.Dense(VOCAB)(y))
    interpreter = _to_tflite(model, tmp_path, litert)
    for s, t in ((1, 1), (5, 3), (23, 7), (4, 12)):
        src, tgt = _ids([s], s, seed=s), _ids([t], t, seed=100 + t)
        (out,) = _run_tflite(interpreter, {"source": src, "target": tgt})
        expected = model.predict([src, tgt], verbose=0)
        assert out.shape == expected.shape == (1, t, VOCAB)
        np.testing.assert_allclose(out, expected, atol=1e-4)


# -------------------------------------------------------------------------------------------- training


def test_encoder_classifier_trains():
    """Gradients reach every weight (dropout active in training) and the loss goes down."""
    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32")
    mask = padding_mask(ids)
    x = TokenAndPositionEmbedding(VOCAB, MAX_LEN, D)(ids)
    x = TransformerEncoder(D, HEADS, FF)(x, mask=mask)
    x = MaskedMeanPooling()(x, mask=mask)
    model = keras.Model(ids, keras.layers.Dense(2, activation="softmax")(x))
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    inputs = _ids([3, 8, 5, 10, 2, 7, 6, 4], 10, seed=15)
    labels = (inputs[:, 0] % 2).astype("int32")  # learnable from the first token
    before = [w.copy() for w in model.get_weights()]
    losses = [float(model.train_on_batch(inputs, labels)) for _ in range(30)]
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0], losses
    assert all(np.abs(a - b).max() > 0 for a, b in zip(before, model.get_weights(), strict=True))
