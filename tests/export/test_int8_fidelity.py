"""int8 fidelity: the pixel map folded into the input quantisation, and bias correction of int8 weights."""
from __future__ import annotations

import keras
import numpy as np

from sensorium.export.bias_correction import correct_bias, quantize_weights
from sensorium.export.tflite import convert
from sensorium.models.backbones.keras_apps import EmbeddedBackbone
from sensorium.models.blocks.conv import ConvBNAct, InvertedResidual
from sensorium.models.blocks.image_preprocessing import ImagePreprocessing
from sensorium.runtime.tflite import EdgeModel

SIZE = 16


def _network(seed: int = 0) -> keras.Model:
    """A tiny EfficientNet-Lite-like network: (B, 16, 16, 3) in [0, 1] -> (B, 24), with uneven weights
    and batch-norm statistics so that int8 rounding matters."""
    keras.utils.set_random_seed(seed)
    images = keras.Input((SIZE, SIZE, 3), name="images")
    x = keras.layers.Rescaling(255.0 / 128.0, offset=-127.0 / 128.0, name="to_model_range")(images)
    x = ConvBNAct(16, 3, strides=2, activation="relu6", name="stem")(x)
    x = InvertedResidual(16, 3, 1, 4, activation="relu6", name="block")(x)
    x = ConvBNAct(24, 1, activation="relu6", name="head_conv")(x)
    network = keras.Model(images, keras.layers.GlobalAveragePooling2D(name="pool")(x))
    rng = np.random.default_rng(seed)
    for layer in network._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0.5, 0.2, n), rng.normal(0, 0.3, n),
                               rng.uniform(0.05, 2.0, n)])
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            w = layer.get_weights()
            w[0] = rng.standard_t(2, w[0].shape).astype(np.float32) * 0.2  # heavy tails: coarse int8 steps
            layer.set_weights(w)
    return network


def _classifier(mean: float | None = None, std: float | None = None) -> keras.Model:
    pixels = keras.Input((None, None, 3), dtype="uint8", name="pixels")
    x = ImagePreprocessing((SIZE, SIZE), channels=3, mean=mean, std=std, name="preprocessing")(pixels)
    x = EmbeddedBackbone(_network(), name="backbone")(x)
    return keras.Model(pixels, keras.layers.Dense(5, activation="softmax", name="head")(x))


def _images(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 1, 1, 3))
    return np.clip(base + rng.normal(0, 60, (n, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)


def test_int8_takes_the_pixel_map_as_its_input_quantisation(tmp_path):
    model = _classifier()
    x = _images(260)
    path = tmp_path / "m.tflite"
    path.write_bytes(convert(model, input_shape=(SIZE, SIZE, 3), quantize="int8",
                             calibration=[x[i:i + 1] for i in range(200)]))
    edge = EdgeModel(path)
    assert edge.input["dtype"] == np.uint8
    scale, zero = edge.input["quantization"]
    assert zero == 127 and abs(scale - 1 / 128) < 1e-9  # (p - 127) / 128: the network's own range
    ops = [d["op_name"] for d in edge.interpreter._get_ops_details()]
    assert ops[:2] == ["QUANTIZE", "CONV_2D"]  # uint8 -> int8 (a shift by 128), then the stem: no
    assert "MUL" not in ops and "ADD" not in ops[:3]  # requantised preprocessing in front of it
    keras_probs = model.predict(x[200:], verbose=0)
    edge_probs = np.concatenate([edge(x[i:i + 1]) for i in range(200, 260)])  # raw uint8 pixels in
    assert np.abs(edge_probs - keras_probs).max() < 0.1
    assert (edge_probs.argmax(1) == keras_probs.argmax(1)).mean() >= 0.9


def test_a_pixel_map_without_an_integer_zero_point_stays_ops(tmp_path):
    model = _classifier(mean=0.45, std=0.5)  # then the network's rescaling: (p - 178.25) / 64
    x = _images(210)
    path = tmp_path / "m.tflite"
    path.write_bytes(convert(model, input_shape=(SIZE, SIZE, 3), quantize="int8",
                             calibration=[x[i:i + 1] for i in range(200)]))
    edge = EdgeModel(path)
    assert edge.input["quantization"] == (1.0, 0)  # pixel values, mapped by ops inside
    keras_probs = model.predict(x[200:], verbose=0)
    edge_probs = np.concatenate([edge(x[i:i + 1]) for i in range(200, 210)])
    assert np.abs(edge_probs - keras_probs).max() < 0.1


def test_bias_correction_cancels_the_mean_shift_of_int8_weights():
    images = np.random.default_rng(2).uniform(0, 1, (100, SIZE, SIZE, 3)).astype(np.float32)
    reference = _network()
    expected = reference.predict(images, verbose=0).mean(axis=0)  # (24,)

    def shift(corrected: bool) -> float:
        network = _network()
        if corrected:
            assert correct_bias(network, images) == 5  # stem, expand, depthwise, project, head_conv
        for layer in network._flatten_layers(include_self=False):
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
                w = layer.get_weights()
                w[0] = quantize_weights(w[0], 2 if isinstance(layer, keras.layers.DepthwiseConv2D) else -1)
                layer.set_weights(w)
        return float(np.abs(network.predict(images, verbose=0).mean(axis=0) - expected).mean())

    before, after = shift(False), shift(True)
    assert before > 1e-3  # the rounding does move the output
    assert after < 0.3 * before


def test_quantize_weights_matches_tflite_per_channel_rounding():
    w = np.array([[1.0, -0.5], [0.25, 0.004]])  # channels on the last axis
    q = quantize_weights(w, -1)
    np.testing.assert_allclose(q[:, 0], np.round(w[:, 0] / (1 / 127)) / 127)
    np.testing.assert_allclose(q[:, 1], np.round(w[:, 1] / (0.5 / 127)) * (0.5 / 127))
    assert np.all(quantize_weights(np.zeros((3, 2)), -1) == 0)


def test_depthwise_rounding_lowers_the_output_error_variance_and_stays_on_the_int8_grid():
    from sensorium.export.bias_correction import round_depthwise

    rng = np.random.default_rng(3)
    kernel = rng.standard_t(3, (3, 3, 6, 1))
    mixing = rng.normal(size=(6, 9, 9))
    cov = np.einsum("ckl,cml->ckm", mixing, mixing) + 0.5 * np.ones((6, 9, 9))  # correlated neighbours
    rounded = round_depthwise(kernel, cov)
    nearest = quantize_weights(kernel, 2)
    scale = np.abs(kernel).max(axis=(0, 1, 3)) / 127  # (C,)
    steps = rounded[..., 0] / scale
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)  # int8 values on each channel's scale
    assert np.all(np.abs(steps - kernel[..., 0] / scale) < 1 + 1e-9)  # each weight rounded down or up
    np.testing.assert_allclose(np.abs(rounded).max(axis=(0, 1, 3)), np.abs(kernel).max(axis=(0, 1, 3)))

    def variance(k: np.ndarray) -> np.ndarray:
        d = (k - kernel)[..., 0].reshape(9, 6).T  # (C, K)
        return np.einsum("ck,ckl,cl->c", d, cov, d)

    assert np.all(variance(rounded) <= variance(nearest) + 1e-12)
    assert variance(rounded).sum() < 0.8 * variance(nearest).sum()


def test_a_stem_convolution_is_rounded_on_its_receptive_fields_and_larger_ones_are_not():
    """The stem (3x3x3 = 27 weights per channel) gets the same rounding as depthwise kernels, on the
    covariance of its whole receptive field: on smooth images its output error is much smaller than with
    nearest rounding, and its kernel is on the int8 grid. A convolution with a wide fan-in is left to
    nearest rounding."""
    from sensorium.export.bias_correction import MAX_ROUNDED_FAN_IN, _small_conv

    rng = np.random.default_rng(4)
    smooth = np.repeat(np.repeat(rng.uniform(0, 1, (60, 4, 4, 3)), 4, axis=1), 4, axis=2)
    images = np.clip(smooth + rng.normal(0, 0.02, smooth.shape), 0, 1).astype(np.float32)  # (60, 16, 16, 3)
    network = _network()
    stem = network.get_layer("stem").conv
    original = np.asarray(stem.get_weights()[0], np.float64)  # (3, 3, 3, 16)
    assert _small_conv(stem)
    wide = keras.layers.Conv2D(8, 1)
    wide.build((None, 4, 4, MAX_ROUNDED_FAN_IN + 1))
    assert not _small_conv(wide)
    correct_bias(network, images)
    rounded = np.asarray(stem.get_weights()[0], np.float64)
    scale = np.abs(original).max(axis=(0, 1, 2)) / 127  # (16,)
    steps = rounded / scale
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-4)  # on each output channel's int8 grid
    assert np.all(np.abs(steps - original / scale) < 1 + 1e-4)  # each weight rounded down or up

    def error_variance(kernel: np.ndarray) -> float:
        x = keras.layers.Rescaling(255.0 / 128.0, offset=-127.0 / 128.0)(images)
        out = keras.ops.conv(x, (kernel - original).astype(np.float32), strides=2, padding="same")
        return float(np.var(np.asarray(out), axis=(0, 1, 2)).sum())

    assert error_variance(rounded) < 0.5 * error_variance(quantize_weights(original, -1))


def test_mse_range_clips_a_heavy_tail_and_keeps_a_range_without_one():
    from sensorium.export.activation_ranges import mse_range

    rng = np.random.default_rng(5)
    values = rng.laplace(0, 1, 50_000)  # a long tail: a few values far out stretch the calibrated range
    low, high = mse_range(values, float(values.min()), float(values.max()))
    assert values.min() < low < 0 < high < values.max()
    assert high - low < 0.95 * (values.max() - values.min())

    def error(lo: float, hi: float) -> float:
        scale = (hi - lo) / 255
        zero = np.round(-lo / scale)
        return float(np.mean(((np.clip(np.round(values / scale) + zero, 0, 255) - zero) * scale - values) ** 2))

    assert error(low, high) < 0.95 * error(float(values.min()), float(values.max()))
    uniform = rng.uniform(0, 6, 50_000)  # a ReLU6 output that fills its range: nothing to clip
    assert mse_range(uniform, 0.0, 6.0) == (0.0, 6.0)
    few = rng.normal(0, 1, 50_000)
    few[:3] = [30.0, -25.0, 28.0]  # three far outliers: clipping them to the bulk would cost more than
    low, high = mse_range(few, -25.0, 30.0)  # the coarser steps do
    assert low < -20 and high > 24


def test_int8_conversion_clips_activation_ranges_but_not_the_input(tmp_path, monkeypatch):
    from tensorflow.lite.tools import flatbuffer_utils

    from sensorium.export import activation_ranges

    seen: dict[str, bytes] = {}
    clip = activation_ranges.clip_ranges

    def recording(calibrated: bytes, *args, **kwargs) -> bytes:
        seen["before"] = calibrated
        seen["after"] = clip(calibrated, *args, **kwargs)
        return seen["after"]

    monkeypatch.setattr(activation_ranges, "clip_ranges", recording)
    model = _classifier()
    x = _images(200, seed=6)
    convert(model, input_shape=(SIZE, SIZE, 3), quantize="int8", calibration=[x[i:i + 1] for i in range(200)])

    def ranges(flatbuffer: bytes) -> dict[int, tuple[float, float]]:
        graph = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer)).subgraphs[0]
        return {i: (t.quantization.min[0], t.quantization.max[0]) for i, t in enumerate(graph.tensors)
                if t.quantization is not None and t.quantization.min is not None and len(t.quantization.min) == 1}

    before, after = ranges(seen["before"]), ranges(seen["after"])
    assert before.keys() == after.keys() and len(before) > 5
    graph = flatbuffer_utils.read_model_from_bytearray(bytearray(seen["before"])).subgraphs[0]
    assert after[int(graph.inputs[0])] == before[int(graph.inputs[0])]  # the pixel map's range is exact
    narrowed = [i for i in before if after[i][1] - after[i][0] < 0.99 * (before[i][1] - before[i][0])]
    assert narrowed  # some tensor's tail was clipped
    for i in before:  # never wider than calibrated (beyond taking in 0, as int8 does anyway)
        assert min(before[i][0], 0) - 1e-6 <= after[i][0] and after[i][1] <= max(before[i][1], 0) + 1e-6
