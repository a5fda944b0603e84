"""Tests for sensorium.models.image: builder, registry, save/load, mixed precision, TFLite."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sensorium.models.blocks import ImageAugmentation, ImagePreprocessing, read_task_metadata
from sensorium.models.image import (
    ARCHITECTURES,
    ArchitectureRegistry,
    ImageClassifierSpec,
    build_image_classifier,
)

TINY = dict(image_size=(12, 12), widths=(4, 8), dropout=0.1)
RNG = np.random.default_rng(0)


def _pixels(b: int = 3, h: int = 12, w: int = 12) -> np.ndarray:
    return RNG.integers(0, 256, size=(b, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("architecture", ["resnet", "separable", "simple"])
@pytest.mark.parametrize("channels", [1, 3])
def test_builds_and_predicts_probabilities(architecture, channels):
    spec = ImageClassifierSpec(architecture=architecture, channels=channels, se_ratio=0.5, head_units=(6,), **TINY)
    model = build_image_classifier(spec, num_classes=5)
    assert model.input.dtype == "uint8" and tuple(model.input.shape) == (None, None, None, 3)
    assert tuple(model.output.shape) == (None, 5)
    assert model.get_layer("preprocessing").output.shape[-1] == channels
    # Any input size is resized in-model.
    for h, w in [(12, 12), (20, 9)]:
        probs = model.predict(_pixels(2, h, w), verbose=0)
        assert probs.shape == (2, 5) and probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)


def test_stages_downsample_by_two_after_the_first():
    model = build_image_classifier(ImageClassifierSpec(architecture="resnet", image_size=(16, 16), widths=(4, 8, 6)), 3)
    shapes = [tuple(model.get_layer(f"stage{i}_block1").output.shape[1:]) for i in (1, 2, 3)]
    assert shapes == [(16, 16, 4), (8, 8, 8), (4, 4, 6)]


def test_blocks_per_stage():
    spec = ImageClassifierSpec(architecture="separable", blocks_per_stage=2, **TINY)
    names = {layer.name for layer in build_image_classifier(spec, 2).layers}
    assert {"stage1_block1", "stage1_block2", "stage2_block1", "stage2_block2"} <= names
    assert "stage1_block3" not in names


def test_unknown_architecture_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown architecture 'vgg'; known: resnet, separable, simple"):
        build_image_classifier(ImageClassifierSpec(architecture="vgg", **TINY), 3)


def test_registry_register_and_duplicate():
    registry = ArchitectureRegistry()

    @registry.register("b")
    def stage_b(x, width, strides, spec, name):
        return x

    registry.register("a", lambda x, width, strides, spec, name: x)
    assert registry.names() == ["a", "b"] and "b" in registry and registry.get("b") is stage_b
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", stage_b)
    with pytest.raises(ValueError, match="known: a, b"):
        registry.get("c")
    assert set(ARCHITECTURES.names()) >= {"resnet", "separable", "simple"}


def test_rejects_label_count_mismatch():
    with pytest.raises(ValueError, match="labels"):
        build_image_classifier(ImageClassifierSpec(**TINY), 3, labels=["a", "b"])


def test_metadata_is_recorded():
    spec = ImageClassifierSpec(channels=1, **TINY)
    model = build_image_classifier(spec, 3, labels=["cat", "dog", "cow"])
    meta = read_task_metadata(model)
    assert meta["task"] == "image"
    assert meta["labels"] == ["cat", "dog", "cow"]
    assert meta["info"]["image_size"] == [12, 12] and meta["info"]["channels"] == 1
    assert model.output_names == ["probabilities"]


def test_augmentation_placement_and_inference_identity():
    aug = dict(rotation=0.1, translation=0.1, zoom=0.1, seed=0)
    model = build_image_classifier(ImageClassifierSpec(augmentation=aug, **TINY), 3)
    layers = [layer.name for layer in model.layers]
    assert layers.index("preprocessing") < layers.index("augmentation") < layers.index("stem")
    assert isinstance(model.get_layer("augmentation"), ImageAugmentation)
    assert isinstance(model.get_layer("preprocessing"), ImagePreprocessing)
    plain = build_image_classifier(ImageClassifierSpec(**TINY), 3)
    assert "augmentation" not in [layer.name for layer in plain.layers]
    x = _pixels()
    preprocessed = keras.Model(model.input, model.get_layer("preprocessing").output)(x)
    augmented = keras.Model(model.input, model.get_layer("augmentation").output)
    np.testing.assert_array_equal(augmented(x, training=False), preprocessed)
    assert np.abs(augmented(x, training=True) - preprocessed).max() > 1e-3


@pytest.mark.parametrize("architecture", ["resnet", "separable", "simple"])
def test_save_load_keras_file_identical_predictions(tmp_path, architecture):
    spec = ImageClassifierSpec(
        architecture=architecture, se_ratio=0.5, head_units=(6,), augmentation=dict(flip=True, zoom=0.1), **TINY
    )
    model = build_image_classifier(spec, 3, labels=["a", "b", "c"])
    x = _pixels(4)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, np.array([0, 1, 2, 0]), epochs=1, verbose=0)  # move BN statistics off their defaults
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    assert read_task_metadata(loaded) == read_task_metadata(model)


def test_mixed_precision_outputs_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        spec = ImageClassifierSpec(se_ratio=0.5, augmentation=dict(rotation=0.1, contrast=0.1), **TINY)
        model = build_image_classifier(spec, 4)
        assert model.get_layer("stem").compute_dtype == "float16"  # really mixed
        assert model.output.dtype == "float32"
        x = _pixels()
        assert model.predict(x, verbose=0).dtype == np.float32
        assert keras.ops.convert_to_numpy(model(x, training=True)).dtype == np.float32
        model.compile("adam", "sparse_categorical_crossentropy")
        history = model.fit(x, np.array([0, 1, 2]), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_tflite_conversion_builtin_ops_only(tmp_path):
    tf = pytest.importorskip("tensorflow")
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    spec = ImageClassifierSpec(se_ratio=0.5, augmentation=dict(rotation=0.1), **TINY)
    model = build_image_classifier(spec, 3)
    export_dir = str(tmp_path / "saved_model")
    model.export(export_dir, format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(export_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # fails if Flex ops are needed
    interpreter = litert.Interpreter(model_content=converter.convert())
    x = _pixels(2, 17, 23)
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, model.predict(x, verbose=0), atol=1e-5)
