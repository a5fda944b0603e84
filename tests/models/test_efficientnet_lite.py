"""The inverted residual block and EfficientNet-Lite: shapes, serialisation, TFLite builtins, the
variants' measured architecture, and the mapping of a PyTorch state dict (every tensor checked)."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from sensorium.models.backbones.efficientnet_lite import (
    EFFICIENTNET_LITE,
    EfficientNetLiteSpec,
    Stage,
    build_efficientnet_lite,
    imagenet_classifier,
    iter_blocks,
    load_torch_state_dict,
    torch_tensor_shapes,
)
from sensorium.models.blocks import InvertedResidual
from sensorium.runtime.errors import ModelError

TINY = EfficientNetLiteSpec("tiny_lite", 32, (Stage(1, 3, 1, 1, 8), Stage(2, 5, 2, 3, 16), Stage(1, 3, 1, 2, 24)),
                            stem=8, head=32, classes=10)


# === InvertedResidual ===
@pytest.mark.parametrize("filters, strides, expand, residual", [(8, 1, 1, True), (16, 2, 6, False), (8, 1, 4, True),
                                                                (12, 1, 6, False)])
def test_inverted_residual_shapes_and_parts(filters, strides, expand, residual):
    layer = InvertedResidual(filters, 3, strides, expand)
    y = layer(np.random.default_rng(0).normal(size=(2, 9, 9, 8)).astype("float32"))
    size = -(-9 // strides)
    assert tuple(y.shape) == (2, size, size, filters) == layer.compute_output_shape((2, 9, 9, 8))
    assert layer.residual is residual and (layer.expand is not None) is (expand > 1)
    if expand > 1:
        assert tuple(layer.expand.conv.kernel.shape) == (1, 1, 8, 8 * expand)
    assert tuple(layer.depthwise.kernel.shape) == (3, 3, 8 * expand, 1)
    assert layer.depthwise_bn.epsilon == 1e-3 and layer.project.bn.epsilon == 1e-3 and layer.project.act is None


def test_inverted_residual_config_round_trip_and_drop_connect():
    keras.utils.set_random_seed(0)
    layer = InvertedResidual(8, 5, 1, 3, activation="relu6", drop_rate=0.5, name="mb")
    x = np.random.default_rng(1).normal(size=(16, 6, 6, 8)).astype("float32")
    y = layer(x)
    config = layer.get_config()
    assert {k: config[k] for k in ("filters", "kernel_size", "strides", "expand_ratio", "activation", "drop_rate")} == \
        {"filters": 8, "kernel_size": 5, "strides": 1, "expand_ratio": 3, "activation": "relu6", "drop_rate": 0.5}
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    again(x)
    again.set_weights(layer.get_weights())
    np.testing.assert_allclose(again(x), y, atol=1e-6)
    np.testing.assert_allclose(layer(x, training=False), y, atol=1e-6)  # drop-connect: identity at inference
    branch = np.asarray(layer(x, training=True)) - x  # training: whole samples' branches dropped (or scaled by 2)
    dropped = [np.allclose(b, 0.0) for b in branch]
    assert any(dropped) and not all(dropped)
    with pytest.raises(ValueError, match="drop_rate"):
        InvertedResidual(8, drop_rate=1.0)


def test_tiny_network_converts_to_tflite_builtins():
    network = build_efficientnet_lite(TINY, drop_connect_rate=0.2)
    converter = tf.lite.TFLiteConverter.from_keras_model(network)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # fails if Flex ops are needed
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    x = np.random.default_rng(2).uniform(size=(1, 32, 32, 3)).astype("float32")
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, network(x), atol=1e-4)


# === The variants ===
def test_variants_match_the_real_checkpoints():
    """Blocks per stage and widths measured from the real Lite0/1/2 checkpoints; their tensor counts
    (296 for Lite0, 386 for Lite1/2) are these plus one num_batches_tracked per batch norm."""
    lite0, lite1, lite2 = (EFFICIENTNET_LITE[f"efficientnet_lite{i}"] for i in range(3))
    assert [s.repeats for s in lite0.stages] == [1, 2, 2, 3, 3, 4, 1]
    assert [s.repeats for s in lite1.stages] == [s.repeats for s in lite2.stages] == [1, 3, 3, 4, 4, 5, 1]
    assert [s.filters for s in lite0.stages] == [s.filters for s in lite1.stages] == [16, 24, 40, 80, 112, 192, 320]
    assert [s.filters for s in lite2.stages] == [16, 24, 48, 88, 120, 208, 352]
    assert (lite0.image_size, lite1.image_size, lite2.image_size) == (224, 240, 260)
    for spec, total in ((lite0, 296), (lite1, 386), (lite2, 386)):
        shapes = torch_tensor_shapes(spec)
        batch_norms = sum(name.endswith(".running_var") for name in shapes)
        assert len(shapes) + batch_norms == total
        assert spec.stem == 32 and spec.head == 1280 and shapes["_conv_head.weight"][1] == spec.stages[-1].filters


# === The state dict ===
def _state_dict(spec: EfficientNetLiteSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """Random tensors with the names and shapes of a checkpoint of `spec` (variances positive)."""
    rng = np.random.default_rng(seed)
    state: dict[str, np.ndarray] = {}
    for name, shape in torch_tensor_shapes(spec).items():
        value = rng.normal(0.0, 0.3, size=shape).astype(np.float32)
        state[name] = np.abs(value) + 0.5 if name.endswith("running_var") else value
        if name.endswith("running_var"):
            state[name.replace("running_var", "num_batches_tracked")] = np.asarray(100, np.int64)
    return state


def _reference_features(spec: EfficientNetLiteSpec, state: dict[str, np.ndarray], images: np.ndarray) -> np.ndarray:
    """The torch network's forward pass written from the state dict: 1x1 convolutions as einsums over
    torch's (out, in) weights, batch norm with epsilon 1e-3, ReLU6, TF "same" padding."""
    def bn(x, prefix):
        return (x - state[f"{prefix}.running_mean"]) / np.sqrt(state[f"{prefix}.running_var"] + 1e-3) \
            * state[f"{prefix}.weight"] + state[f"{prefix}.bias"]

    def pointwise(x, weight):
        return np.einsum("bhwc,oc->bhwo", x, weight[:, :, 0, 0])

    def relu6(x):
        return np.clip(x, 0.0, 6.0)

    x = (images * 255.0 - 127.0) / 128.0
    stem = np.transpose(state["_conv_stem.weight"], (2, 3, 1, 0))
    x = relu6(bn(tf.nn.conv2d(x, stem, 2, "SAME").numpy(), "_bn0"))
    for block in iter_blocks(spec):
        p = f"_blocks.{block.index}"
        y = relu6(bn(pointwise(x, state[f"{p}._expand_conv.weight"]), f"{p}._bn0")) if block.expand > 1 else x
        depthwise = np.transpose(state[f"{p}._depthwise_conv.weight"], (2, 3, 0, 1))
        y = relu6(bn(tf.nn.depthwise_conv2d(y, depthwise, (1, block.strides, block.strides, 1), "SAME").numpy(),
                     f"{p}._bn1"))
        y = bn(pointwise(y, state[f"{p}._project_conv.weight"]), f"{p}._bn2")
        x = y + x if block.strides == 1 and block.in_channels == block.filters else y
    x = relu6(bn(pointwise(x, state["_conv_head.weight"]), "_bn1"))
    return x.mean(axis=(1, 2))


def test_state_dict_maps_onto_the_network():
    state = _state_dict(TINY)
    network = build_efficientnet_lite(TINY)
    kernel, bias = load_torch_state_dict(network, TINY, state)
    images = np.random.default_rng(3).uniform(size=(2, 32, 32, 3)).astype("float32")
    features = np.asarray(network(images))
    np.testing.assert_allclose(features, _reference_features(TINY, state, images), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(kernel, state["_fc.weight"].T)
    np.testing.assert_array_equal(bias, state["_fc.bias"])
    logits = features @ state["_fc.weight"].T + state["_fc.bias"]
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(imagenet_classifier(network, kernel, bias)(images),
                               expected / expected.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)
    # a network whose input is already in the checkpoint's range gives the same features
    native = build_efficientnet_lite(TINY, input_range=(-1.0, 1.0))
    load_torch_state_dict(native, TINY, state)
    np.testing.assert_allclose(native(images * 2.0 - 1.0), features, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("_blocks.2._depthwise_conv.weight"), r"missing tensor _blocks.2._depthwise_conv.weight \(a "),
    (lambda s: s.update({"_blocks.1._se_reduce.weight": np.zeros((2, 24, 1, 1), np.float32)}),
     r"unexpected tensor _blocks.1._se_reduce.weight \(2, 24, 1, 1\) \(not part of tiny_lite\)"),
    (lambda s: s.update({"_blocks.1._project_conv.weight": np.zeros((16, 23, 1, 1), np.float32)}),
     r"tensor _blocks.1._project_conv.weight has shape \(16, 23, 1, 1\), expected \(16, 24, 1, 1\)"),
    (lambda s: s.update({"_fc.bias": np.full(10, np.nan, np.float32)}), r"tensor _fc.bias is not finite"),
    (lambda s: s.update({"_bn0.num_batches_tracked": np.zeros(2, np.int64)}),
     r"tensor _bn0.num_batches_tracked has shape \(2,\), expected \(\)"),
])
def test_bad_state_dicts_fail_in_one_line_naming_the_tensor(change, message):
    state = _state_dict(TINY)
    change(state)
    network = build_efficientnet_lite(TINY)
    before = [w.numpy().copy() for w in network.weights]
    with pytest.raises(ModelError, match=message) as exc:
        load_torch_state_dict(network, TINY, state, label="fake.pth")
    assert "\n" not in str(exc.value) and str(exc.value).startswith("fake.pth: ")
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, network.weights))  # nothing half-copied


def test_num_batches_tracked_is_optional():
    state = {k: v for k, v in _state_dict(TINY).items() if not k.endswith("num_batches_tracked")}
    load_torch_state_dict(build_efficientnet_lite(TINY), TINY, state)


def test_the_network_serialises_with_its_weights(tmp_path):
    from sensorium.pipelines.common.artifacts import load_keras

    network = build_efficientnet_lite(TINY)
    load_torch_state_dict(network, TINY, _state_dict(TINY))
    network.save(tmp_path / "net.keras")
    again = load_keras(tmp_path / "net.keras")
    x = np.random.default_rng(4).uniform(size=(1, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(again(x), network(x), atol=1e-5)
    assert [w.path for w in again.weights] == [w.path for w in network.weights]
    assert any(w.path.startswith("stage2_block2/expand/conv") for w in network.weights)  # names for --finetune-pattern
