"""Unit tests for sensorium.models.blocks: shapes, serialisation, preprocessing numerics, metadata."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sensorium.models.blocks import (
    ClassifierHead,
    ConvBNAct,
    DepthwiseSeparableConv,
    ImageAugmentation,
    ImagePreprocessing,
    ResidualBlock,
    SqueezeExcite,
    TaskMetadata,
    read_task_metadata,
)

RNG = np.random.default_rng(0)


def _images(b: int = 2, h: int = 8, w: int = 8, c: int = 3) -> np.ndarray:
    return RNG.normal(size=(b, h, w, c)).astype("float32")


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    "layer, in_shape, out_shape",
    [
        (ConvBNAct(4), (2, 8, 8, 3), (2, 8, 8, 4)),
        (ConvBNAct(6, kernel_size=1, strides=2, activation=None, use_bn=False), (2, 8, 8, 3), (2, 4, 4, 6)),
        (ConvBNAct(8, strides=2, groups=2), (2, 7, 7, 4), (2, 4, 4, 8)),
        (SqueezeExcite(0.5), (2, 5, 5, 6), (2, 5, 5, 6)),
        (DepthwiseSeparableConv(8), (2, 8, 8, 4), (2, 8, 8, 8)),
        (DepthwiseSeparableConv(8, strides=2, se_ratio=0.25), (2, 8, 8, 4), (2, 4, 4, 8)),
        (ResidualBlock(4), (2, 8, 8, 4), (2, 8, 8, 4)),
        (ResidualBlock(8), (2, 8, 8, 4), (2, 8, 8, 8)),
        (ResidualBlock(8, strides=2, se_ratio=0.5, dropout=0.1), (2, 7, 7, 4), (2, 4, 4, 8)),
        (ClassifierHead(5), (2, 4, 4, 8), (2, 5)),
        (ClassifierHead(3, hidden_units=(6, 4), dropout=0.3), (2, 8), (2, 3)),
    ],
    ids=lambda v: v.__class__.__name__ if isinstance(v, keras.layers.Layer) else str(v),
)
def test_block_output_shapes(layer, in_shape, out_shape):
    y = layer(_images(*in_shape))
    assert tuple(y.shape) == out_shape
    assert tuple(layer.compute_output_shape(in_shape)) == out_shape
    # Symbolic (functional) use with unknown batch agrees.
    sym = layer(keras.Input(in_shape[1:]))
    assert tuple(sym.shape) == (None, *out_shape[1:])


def test_residual_block_projection_only_when_needed():
    identity = ResidualBlock(4)
    identity(_images(1, 4, 4, 4))
    assert identity.proj_conv is None
    projected = ResidualBlock(4, strides=2)
    projected(_images(1, 4, 4, 4))
    assert projected.proj_conv is not None


def test_residual_block_adds_shortcut():
    # With all conv kernels zeroed, F(x) is 0 and the block reduces to relu(x).
    block = ResidualBlock(4, activation="relu")
    x = _images(1, 4, 4, 4)
    block(x)
    for v in block.trainable_variables:
        if "kernel" in v.path:
            v.assign(np.zeros(v.shape, "float32"))
    np.testing.assert_allclose(block(x, training=False), np.maximum(x, 0), atol=1e-6)


def test_squeeze_excite_gates_channels():
    se = SqueezeExcite(0.5)
    x = np.abs(_images(2, 4, 4, 6)) + 0.1
    y = keras.ops.convert_to_numpy(se(x))
    gate = y / x  # constant per (batch, channel), within (0, 1)
    np.testing.assert_allclose(gate, np.broadcast_to(gate[:, :1, :1, :], gate.shape), rtol=1e-5)
    assert np.all((gate > 0) & (gate < 1))


def test_classifier_head_outputs_probabilities():
    probs = keras.ops.convert_to_numpy(ClassifierHead(7, hidden_units=(5,))(_images(3, 4, 4, 8)))
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)
    assert np.all(probs >= 0)


# --------------------------------------------------------------------------- serialisation


def _all_layers():
    return [
        ConvBNAct(5, kernel_size=5, strides=2, activation="gelu", use_bn=False, groups=1, name="c"),
        SqueezeExcite(0.5, name="se"),
        DepthwiseSeparableConv(6, kernel_size=5, strides=2, activation="swish", se_ratio=0.5, name="ds"),
        ResidualBlock(6, strides=2, activation="elu", se_ratio=0.25, dropout=0.2, name="res"),
        ClassifierHead(4, hidden_units=(8, 6), dropout=0.3, activation="tanh", name="head"),
        ImagePreprocessing((6, 5), channels=1, mean=0.5, std=[0.25], scale=0.5, crop_to_aspect_ratio=True, name="pre"),
        ImageAugmentation(flip="vertical", rotation=0.1, translation=0.2, zoom=0.3, contrast=0.4, seed=7,
                          value_range=(0.0, 2.0), name="aug"),
        TaskMetadata("image", labels=["a", "b"], info={"image_size": [6, 5], "nested": {"k": 1}}, name="meta"),
    ]


def _constructor_args(layer: keras.layers.Layer) -> dict:
    base = set(keras.layers.Layer().get_config())
    return {k: v for k, v in layer.get_config().items() if k not in base}


@pytest.mark.parametrize("layer", _all_layers(), ids=lambda layer: layer.__class__.__name__)
def test_layer_serialize_round_trip(layer):
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is type(layer)
    assert restored.name == layer.name
    assert _constructor_args(restored) == _constructor_args(layer)
    # Every non-default constructor argument used above shows up in the config.
    assert all(v not in (None, (), []) for k, v in _constructor_args(layer).items() if k != "seed")


def test_get_config_repeats_every_constructor_argument():
    import inspect

    for layer in _all_layers():
        params = [p for p in inspect.signature(type(layer).__init__).parameters if p not in ("self", "kwargs")]
        missing = set(params) - set(layer.get_config())
        assert not missing, f"{type(layer).__name__} get_config lacks {missing}"


def test_blocks_model_save_load_identical(tmp_path):
    inputs = keras.Input((9, 9, 3))
    x = ConvBNAct(4, name="stem")(inputs)
    x = DepthwiseSeparableConv(6, strides=2, se_ratio=0.5)(x)
    x = ResidualBlock(8, strides=2, se_ratio=0.5, dropout=0.1)(x)
    x = ClassifierHead(3, hidden_units=(4,), dropout=0.1)(x)
    outputs = TaskMetadata("image", labels=["x", "y", "z"])(x)
    model = keras.Model(inputs, outputs)
    data = _images(4, 9, 9, 3)
    # One training step so BN moving statistics differ from their initial values.
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(data, np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    path = tmp_path / "blocks.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(data, verbose=0), model.predict(data, verbose=0), rtol=1e-6, atol=1e-6)
    assert len(loaded.weights) == len(model.weights)


# --------------------------------------------------------------------------- preprocessing


def _numpy_reference(img: np.ndarray, mean, std, scale: float) -> np.ndarray:
    gray = img.astype(np.float64) @ np.array([0.2989, 0.5870, 0.1140])
    gray = gray[..., None]  # (B, H, W, 1)
    # Bilinear half-pixel 2x downsampling = mean of each 2x2 block.
    b, h, w, c = gray.shape
    down = gray.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    return (down * scale - mean) / std


def test_image_preprocessing_matches_numpy_reference():
    img = RNG.integers(0, 256, size=(2, 4, 6, 3), dtype=np.uint8)
    layer = ImagePreprocessing((2, 3), channels=1, mean=0.1, std=0.3, scale=1 / 255.0)
    out = keras.ops.convert_to_numpy(layer(img))
    assert out.shape == (2, 2, 3, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out, _numpy_reference(img, 0.1, 0.3, 1 / 255.0), rtol=1e-5, atol=1e-5)


def test_image_preprocessing_rgb_per_channel_normalisation_and_no_resize():
    img = RNG.integers(0, 256, size=(1, 3, 3, 3), dtype=np.uint8)
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 2.0]
    out = keras.ops.convert_to_numpy(ImagePreprocessing((3, 3), channels=3, mean=mean, std=std)(img))
    expected = (img / 255.0 - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_image_preprocessing_upsamples_any_size_and_crops_aspect():
    img = np.full((1, 5, 10, 3), 200, np.uint8)
    img[:, :, :2] = 0  # left strip black: cropped away by the centre 5x5 crop (columns 2..6)
    out = keras.ops.convert_to_numpy(ImagePreprocessing((4, 4), channels=3, crop_to_aspect_ratio=True)(img))
    assert out.shape == (1, 4, 4, 3)
    np.testing.assert_allclose(out, 200 / 255.0, rtol=1e-5)
    stretched = keras.ops.convert_to_numpy(ImagePreprocessing((4, 4), channels=3)(img))
    assert stretched[0, :, 0].max() < 0.5  # without cropping the black strip remains


def test_image_preprocessing_rejects_bad_settings():
    with pytest.raises(ValueError, match="channels"):
        ImagePreprocessing((4, 4), channels=2)
    with pytest.raises(ValueError, match="mean"):
        ImagePreprocessing((4, 4), channels=3, mean=[0.1, 0.2])


# --------------------------------------------------------------------------- augmentation


def test_augmentation_identity_at_inference_and_random_in_training():
    aug = ImageAugmentation(flip=True, rotation=0.2, translation=0.2, zoom=0.2, contrast=0.3, seed=1)
    x = RNG.uniform(size=(4, 12, 12, 1)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(aug(x)), x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(aug(x, training=False)), x)
    trained = keras.ops.convert_to_numpy(aug(x, training=True))
    assert trained.shape == x.shape
    assert np.abs(trained - x).max() > 1e-3
    assert trained.min() >= 0.0 and trained.max() <= 1.0  # fill 0, contrast clipped to (0, 1)


def test_augmentation_fills_with_zero():
    aug = ImageAugmentation(translation=0.5, seed=3)
    x = np.ones((8, 10, 10, 1), "float32")
    out = keras.ops.convert_to_numpy(aug(x, training=True))
    assert np.isclose(out, 0.0).any()  # uncovered areas are black (0), not reflected/nearest copies
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6


def test_zoom_range_zooms_out_only_when_asked():
    x = np.ones((16, 20, 20, 1), "float32")
    out = keras.ops.convert_to_numpy(ImageAugmentation(zoom=(0.5, 1.0), seed=4)(x, training=True))
    ink = out.reshape(16, -1).mean(-1)  # a white frame zoomed out to 1/1.5 .. 1/2 of its size
    assert (ink > 0.2).all() and (ink < 0.5).all()
    out = keras.ops.convert_to_numpy(ImageAugmentation(zoom=(-0.3, -0.1), seed=4)(x, training=True))
    np.testing.assert_allclose(out, 1.0, atol=1e-5)  # zooming in keeps the frame covered
    config = ImageAugmentation(zoom=(-0.35, 1.0)).get_config()
    assert config["zoom"] == [-0.35, 1.0] and ImageAugmentation.from_config(config).zoom == (-0.35, 1.0)
    with pytest.raises(ValueError, match="zoom range"):
        ImageAugmentation(zoom=(0.5, 0.1))


def test_content_framing_scales_and_centres_like_mnist():
    from sensorium.models.blocks.image_preprocessing import ContentFraming

    x = np.zeros((3, 28, 28, 1), "float32")
    x[0, 1:7, 20:23] = 1.0  # a small bar in a corner: 6 px tall
    x[1, 0:28, 10:14] = 0.8  # a bar that fills the frame's height
    layer = ContentFraming()
    out = keras.ops.convert_to_numpy(layer(x))  # x[2] blank
    for i in (0, 1):
        rows, cols = np.nonzero(out[i, ..., 0] > 0.3)
        assert 18 <= rows.max() - rows.min() + 1 <= 22  # the longer side scaled to 20 of 28 px
        mass = out[i, ..., 0]
        cy = (mass.sum(1) * (np.arange(28) + 0.5)).sum() / mass.sum()
        cx = (mass.sum(0) * (np.arange(28) + 0.5)).sum() / mass.sum()
        assert abs(cy - 14) < 0.75 and abs(cx - 14) < 0.75  # centre of mass at the frame's centre
    np.testing.assert_array_equal(out[2], 0.0)  # a blank image passes through
    assert layer.keep_float  # export keeps it in float32 in int8 files
    clone = ContentFraming.from_config(ContentFraming(fraction=0.5, threshold=0.1).get_config())
    assert (clone.fraction, clone.threshold) == (0.5, 0.1)
    with pytest.raises(ValueError, match="ContentFraming needs"):
        ContentFraming(fraction=1.5)


def test_empty_augmentation_is_identity_in_training():
    x = _images(2, 6, 6, 1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ImageAugmentation()(x, training=True)), x)


# --------------------------------------------------------------------------- metadata


def test_task_metadata_identity_and_readback(tmp_path):
    inputs = keras.Input((3,))
    x = keras.layers.Dense(2)(inputs)
    outputs = TaskMetadata("speech", labels=["yes", "no"], info={"sample_rate": 16000})(x)
    model = keras.Model(inputs, outputs)
    dense_only = keras.Model(inputs, x)
    data = _images(2, 3, 1, 1).reshape(2, 3)
    np.testing.assert_array_equal(model.predict(data, verbose=0), dense_only.predict(data, verbose=0))
    expected = {"task": "speech", "labels": ["yes", "no"], "info": {"sample_rate": 16000}}
    assert read_task_metadata(model) == expected
    path = tmp_path / "meta.keras"
    model.save(path)
    assert read_task_metadata(keras.saving.load_model(path, safe_mode=True)) == expected
    # Found inside a nested model too; absent -> None.
    outer = keras.Sequential([keras.Input((3,)), model])
    assert read_task_metadata(outer) == expected
    assert read_task_metadata(dense_only) is None


def test_task_metadata_keeps_dtype_and_rejects_bad_info():
    layer = TaskMetadata("image")
    x = np.ones((2, 2), "float16")
    assert keras.ops.convert_to_numpy(layer(x)).dtype == np.float16
    with pytest.raises(ValueError, match="JSON"):
        TaskMetadata("image", info={"bad": object()})
