"""HoistedLSTM: Keras's LSTM with the input projection out of the time loop. Same weights, same outputs
and gradients as `keras.layers.LSTM`, in every mode that takes the fast path and in those that defer."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from sensorium.models.blocks.recurrent import HoistedLSTM


def _pair(units=6, **kwargs):
    """(keras LSTM, HoistedLSTM) built on (None, 7, 5) with the same random weights (nonzero bias)."""
    ref, ours = keras.layers.LSTM(units, **kwargs), HoistedLSTM(units, **kwargs)
    ref.build((None, 7, 5))
    ours.build((None, 7, 5))
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 0.5, w.shape).astype("float32") for w in ref.get_weights()]
    ref.set_weights(weights)
    ours.set_weights(weights)
    return ref, ours


X = np.random.default_rng(1).normal(size=(3, 7, 5)).astype("float32")  # (B, T, F)


@pytest.mark.parametrize("kwargs", [dict(return_sequences=True), dict(return_sequences=False),
                                    dict(return_sequences=True, go_backwards=True),
                                    dict(return_sequences=True, return_state=True),
                                    dict(return_sequences=True, use_bias=False),
                                    dict(return_sequences=True, activation="relu",
                                         recurrent_activation="hard_sigmoid")])
def test_outputs_and_gradients_match_keras(kwargs):
    ref, ours = _pair(**kwargs)
    x = tf.constant(X)
    grads, outs = [], []
    for layer in (ref, ours):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer(x, training=True)
            out = out if isinstance(out, (list, tuple)) else [out]
            loss = sum(tf.reduce_sum(o ** 3) for o in out)
        outs.append([o.numpy() for o in out])
        grads.append([g.numpy() for g in tape.gradient(loss, [x, *layer.trainable_variables])])
    assert len(outs[0]) == len(outs[1])
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_the_fast_path_is_taken_and_defers_where_it_must(monkeypatch):
    calls = []
    original = keras.layers.LSTM.inner_loop

    def spy(self, *args, **kwargs):
        calls.append(type(self).__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(keras.layers.LSTM, "inner_loop", spy)
    _, ours = _pair(return_sequences=True)
    ours(X)
    assert calls == []  # hoisted: Keras's loop was not used
    ours(X, mask=np.array([[True] * 7, [True] * 4 + [False] * 3, [True] * 7]))
    assert calls == ["HoistedLSTM"]  # a mask defers to Keras
    _, dropped = _pair(return_sequences=True, dropout=0.5)
    dropped(X, training=True)
    assert calls == ["HoistedLSTM", "HoistedLSTM"]  # input dropout in training defers
    dropped(X, training=False)
    assert len(calls) == 2


def test_masked_input_matches_keras():
    ref, ours = _pair(return_sequences=True)
    mask = np.array([[True] * 7, [True] * 4 + [False] * 3, [True] * 2 + [False] * 5])
    np.testing.assert_allclose(ref(X, mask=mask).numpy(), ours(X, mask=mask).numpy(), atol=1e-6)


def test_bidirectional_saves_and_reloads_in_safe_mode(tmp_path):
    inputs = keras.Input((None, 5))
    outputs = keras.layers.Bidirectional(HoistedLSTM(4, return_sequences=True))(inputs)  # (B, T, 8)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.layers[1].forward_layer, HoistedLSTM)
    assert loaded.layers[1].backward_layer.go_backwards
    np.testing.assert_allclose(loaded(X).numpy(), model(X).numpy(), atol=1e-6)
    keras_model = keras.Model(inputs2 := keras.Input((None, 5)),
                              keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))(inputs2))
    keras_model.set_weights(model.get_weights())  # the same weights, in the same order
    np.testing.assert_allclose(keras_model(X).numpy(), model(X).numpy(), atol=1e-5)
