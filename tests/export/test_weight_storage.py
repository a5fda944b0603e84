"""Weight-only int8 storage of a float32 `.tflite` (export/weight_storage.py)."""
from __future__ import annotations

import numpy as np


def _float32(model, shape):
    from sensorium.export.tflite import convert

    return convert(model, input_shape=shape, quantize="none")


def _run(flatbuffer, x):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_kernels_become_int8_and_outputs_stay_close():
    import keras

    from sensorium.export.weight_storage import int8_weight_storage

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), dtype="float32")
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(512)(x)  # (B, 512): 64 * 512 weights, the largest kernel
    model = keras.Model(inputs, outputs)
    float32 = _float32(model, (8, 8, 3))
    stored, count = int8_weight_storage(float32)
    assert count == 3 and len(stored) < len(float32) * 0.35  # kernels a quarter of their float32 size
    x = np.random.default_rng(0).uniform(0, 1, (1, 8, 8, 3)).astype(np.float32)
    want, got = _run(float32, x), _run(stored, x)
    assert np.abs(got - want).max() <= 0.02 * np.abs(want).max() and not np.array_equal(got, want)


def test_a_model_without_kernels_is_returned_as_it_is():
    import keras

    from sensorium.export.weight_storage import int8_weight_storage

    inputs = keras.Input((4,), dtype="float32")
    model = keras.Model(inputs, keras.layers.Rescaling(2.0, offset=1.0)(inputs))
    float32 = _float32(model, (4,))
    assert int8_weight_storage(float32) == (float32, 0)
