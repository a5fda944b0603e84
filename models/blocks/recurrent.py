"""Recurrent layers: an LSTM whose input projection runs once over the whole sequence.

Keras's `LSTM` on a CPU (no cuDNN) multiplies each time step's input by the input kernel inside
the loop: T small matmuls of (B, F) x (F, 4U), plus T of (B, U) x (U, 4U) for the recurrence.
`HoistedLSTM` does the input half as one (B*T, F) x (F, 4U) matmul before the loop, so the loop
body only does the recurrent matmul and the gates. The weights (`kernel`, `recurrent_kernel`,
`bias`), their layout, the gate order (i, f, c, o) and the outputs are Keras's own, so weights move
between the two layers unchanged (`tests/models/test_recurrent.py` checks outputs and gradients
against `keras.layers.LSTM`).

Where the fast path does not apply (a mask, input or recurrent dropout, `unroll`, or a GPU where
cuDNN serves), it defers to `keras.layers.LSTM`.
"""
from __future__ import annotations

from typing import Any

import keras
from keras import ops
from keras.src import backend as keras_backend  # `rnn`: the time loop Keras's own RNN layers use


@keras.saving.register_keras_serializable(package="sensorium")
class HoistedLSTM(keras.layers.LSTM):
    """`keras.layers.LSTM` with the input projection hoisted out of the time loop (same weights,
    same outputs). Input (B, T, F) -> (B, T, U) with `return_sequences`, else (B, U)."""

    def _hoistable(self, mask: Any, training: bool) -> bool:
        if mask is not None or self.unroll or self.recurrent_dropout:
            return False
        if training and self.dropout:
            return False
        # On a GPU, Keras's cuDNN kernel is faster still; let LSTM try it.
        return not (self.use_cudnn in ("auto", True) and _has_gpu())

    def inner_loop(self, sequences, initial_state, mask, training=False):  # noqa: D102 (Keras API)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if not self._hoistable(mask, training):
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        cell = self.cell
        inputs = ops.matmul(sequences, cell.kernel)  # (B, T, 4U), every step at once
        if cell.use_bias:
            inputs = ops.add(inputs, cell.bias)
        recurrent_kernel = cell.recurrent_kernel  # (U, 4U)

        def step(z_x, states):  # z_x (B, 4U); states [h (B, U), c (B, U)]
            h_tm1, c_tm1 = states[0], states[1]
            z = ops.add(z_x, ops.matmul(h_tm1, recurrent_kernel))  # (B, 4U)
            z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
            i = cell.recurrent_activation(z_i)
            f = cell.recurrent_activation(z_f)
            c = f * c_tm1 + i * cell.activation(z_c)
            o = cell.recurrent_activation(z_o)
            h = o * cell.activation(c)
            return h, [h, c]

        if not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]
        return keras_backend.rnn(
            step, inputs, list(initial_state), go_backwards=self.go_backwards, mask=None, unroll=False,
            input_length=sequences.shape[1], zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=self.return_sequences)


def _has_gpu() -> bool:
    """Whether TensorFlow sees a GPU (where Keras's LSTM may use cuDNN)."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))
