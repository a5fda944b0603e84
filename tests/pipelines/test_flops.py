"""The graph FLOP counter: loop bodies times their trip count, einsums, and agreement with TensorFlow's
profiler where the profiler can count."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from sensorium.pipelines.common.flops import einsum_flops, graph_flops, training_step_flops


def _graph(fn, *specs):
    return tf.function(fn).get_concrete_function(*specs).graph


def test_einsum_counts_every_index_once():
    assert einsum_flops("bqd,dhk->bqhk", [[2, 5, 8], [8, 4, 3]]) == 2 * 2 * 5 * 8 * 4 * 3
    assert einsum_flops("...ij,...jk->...ik", [[3, 1, 4, 6], [5, 6, 7]]) == 2 * 3 * 5 * 4 * 6 * 7
    assert einsum_flops("ij->ji", [[3, 4]]) == 12
    with pytest.raises(ValueError):
        einsum_flops("ij,jk->ik", [[2, 3]])


def test_matmul_and_batch_matmul():
    a, b = tf.TensorSpec((6, 5)), tf.TensorSpec((5, 7))
    assert graph_flops(_graph(lambda x, y: tf.matmul(x, y), a, b)) == 2 * 6 * 5 * 7
    a, b = tf.TensorSpec((3, 6, 5)), tf.TensorSpec((7, 5))
    assert graph_flops(_graph(lambda x, y: tf.matmul(x, y, transpose_b=True), a, b)) == 2 * 3 * 6 * 5 * 7
    a, b = tf.TensorSpec((2, 4, 8)), tf.TensorSpec((2, 8, 3))
    assert graph_flops(_graph(lambda x, y: tf.einsum("bij,bjk->bik", x, y), a, b)) == 2 * 2 * 4 * 8 * 3


def test_loop_body_counts_once_per_trip():
    def loop(x, w):
        return tf.while_loop(lambda i, h: i < 9, lambda i, h: (i + 1, tf.matmul(h, w)), (0, x),
                             maximum_iterations=9)[1]

    graph = _graph(loop, tf.TensorSpec((4, 16)), tf.TensorSpec((16, 16)))
    per_trip = 2 * 4 * 16 * 16
    assert graph_flops(graph) >= 9 * per_trip  # the static maximum_iterations
    assert graph_flops(graph) < 10 * per_trip


def test_lstm_training_step_counts_its_time_steps_and_matches_the_profiler_without_loops():
    keras.utils.set_random_seed(0)
    steps, batch, features, units = 20, 4, 16, 32
    inputs = keras.Input((steps, features))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.LSTM(units, return_sequences=True)(inputs)))
    data = (np.zeros((batch, steps, features), np.float32), np.zeros((batch, steps, 3), np.float32),
            np.ones((batch, steps), np.float32))
    loss = keras.losses.MeanSquaredError()
    counted = training_step_flops(model, loss, data, loop_trips=steps)
    gates = 2 * batch * 4 * units * (features + units)  # the cell's two matmuls per step
    # forward (one step outside the loop to infer shapes, then each step) and backward (input and
    # weight gradients: two matmuls of the same size per forward matmul)
    assert counted > (steps + 1) * gates + 2 * steps * gates
    assert counted < 1.5 * ((steps + 1) * gates + 2 * steps * gates) + 1e6
    with pytest.raises(ValueError, match="trip count"):
        training_step_flops(model, loss, data)

    dense = keras.Sequential([keras.Input((features,)), keras.layers.Dense(64), keras.layers.Dense(3)])
    data = (np.zeros((batch, features), np.float32), np.zeros((batch, 3), np.float32), np.ones(batch, np.float32))

    @tf.function
    def step(x, y, w):
        with tf.GradientTape() as tape:
            value = loss(y, dense(x, training=True), sample_weight=w)
        return tape.gradient(value, dense.trainable_variables)

    graph = step.get_concrete_function(*(tf.TensorSpec(t.shape) for t in data)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profiled = tf.compat.v1.profiler.profile(graph, options=options).total_float_ops
    assert graph_flops(graph) == profiled
    assert training_step_flops(dense, loss, data) == profiled
