"""The backbone registry: known handles with their input size and range, size read from a module's
metadata or signature, and one-line errors for names, formats and modules Sensorium cannot use."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from sensorium.models.backbones.hub import HubModuleError
from sensorium.models.backbones.registry import HUB_BACKBONES, KERAS_BACKBONES, backbone_catalogue, describe_backbone


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory):
    import keras

    from sensorium.export.hub_module import write_hub_module
    from sensorium.models.image import ImageClassifierSpec, build_image_classifier

    keras.utils.set_random_seed(0)
    model = build_image_classifier(ImageClassifierSpec(image_size=(16, 16), channels=3, widths=(4, 8)), 2)
    return write_hub_module(model, tmp_path_factory.mktemp("hub") / "module", image_size=(16, 16),
                            meta={"task": "image"})


def _save_module(path, module):
    import tensorflow as tf

    tf.saved_model.save(module, str(path))
    return path


def test_registered_entries_carry_size_and_range():
    info = describe_backbone("hub:mobilenet_v3_small")
    assert info.image_size == (224, 224) and info.value_range == (0.0, 1.0) and info.features == 1024
    assert info.handle.startswith("https://tfhub.dev/google/imagenet/mobilenet_v3_small")
    assert describe_backbone("keras:MobileNetV2").value_range == (-1.0, 1.0)
    assert describe_backbone("keras:EfficientNetB0").value_range == (0.0, 255.0)
    assert describe_backbone("keras:DenseNet121").mean == (0.485, 0.456, 0.406)
    names = {row["backbone"] for row in backbone_catalogue()}
    assert {"hub:efficientnet_v2_b0", "hub:resnet_v2_50", "keras:MobileNetV3Small"} <= names
    assert len(names) == len(HUB_BACKBONES.names()) + len(KERAS_BACKBONES.names())


def test_readme_lists_every_registered_backbone():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    missing = [row["backbone"] for row in backbone_catalogue() if f"`{row['backbone']}`" not in readme]
    assert not missing, f"README backbone table lacks {missing}"


def test_local_module_size_from_metadata_then_signature(module_dir, tmp_path):
    info = describe_backbone(f"hub:{module_dir}")
    assert info.image_size == (16, 16) and info.features == 8 and info.value_range == (0.0, 1.0)
    bare = tmp_path / "bare"
    shutil.copytree(module_dir, bare)
    (bare / "assets" / "sensorium.json").unlink()
    assert describe_backbone(f"hub:{bare.as_uri()}").image_size == (16, 16)  # from the __call__ signature


def test_dynamic_size_module_needs_an_explicit_size(tmp_path):
    import tensorflow as tf

    from sensorium.models.image import ImageClassifierSpec, resolve_image_size

    class Pooler(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.ones((3, 5)))

        @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32), tf.TensorSpec((), tf.bool)])
        def __call__(self, images, training=False):
            return tf.reduce_mean(images, axis=[1, 2]) @ self.w  # (B, 5)

    path = _save_module(tmp_path / "dynamic", Pooler())
    assert describe_backbone(f"hub:{path}").image_size is None
    with pytest.raises(HubModuleError, match="accepts any input size.*--image-size"):
        resolve_image_size(ImageClassifierSpec(backbone=f"hub:{path}"))
    assert resolve_image_size(ImageClassifierSpec(backbone=f"hub:{path}", image_size=(20, 24))) == (20, 24)


@pytest.mark.parametrize("backbone, message", [
    ("hub:mobilenet_v9", "unknown hub backbone 'mobilenet_v9'; known: .*mobilenet_v3_small"),
    ("keras:ResNet9000", "unknown keras backbone 'ResNet9000'; known: .*MobileNetV2"),
    ("torch:resnet", "backbone must be 'hub:NAME_OR_HANDLE' or 'keras:NAME'"),
    ("hub:", "backbone must be"),
    ("hub:https://tfhub.dev/google/nothing/1", "cannot resolve hub handle .*no network"),
    ("hub:/nonexistent/module", "cannot resolve hub handle '/nonexistent/module'"),
])
def test_bad_backbones_fail_in_one_line(backbone, message):
    with pytest.raises(HubModuleError, match=message) as exc:
        describe_backbone(backbone)
    assert "\n" not in str(exc.value)


def test_modules_sensorium_cannot_use(tmp_path, module_dir):
    """No __call__ signature; an output that is not a feature vector; an input size the module rejects."""
    import keras
    import tensorflow as tf

    from sensorium.models.backbones.hub import HubBackbone

    holder = tf.Module()
    holder.v = tf.Variable(1.0)
    no_call = _save_module(tmp_path / "nocall", holder)
    with pytest.raises(HubModuleError, match="no usable __call__ signature"):
        HubBackbone(str(no_call))

    class FeatureMap(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.ones((3, 4)))

        @tf.function(input_signature=[tf.TensorSpec((None, 8, 8, 3), tf.float32), tf.TensorSpec((), tf.bool)])
        def __call__(self, images, training=False):
            return tf.einsum("bhwc,cd->bhwd", images, self.w)  # (B, 8, 8, 4): a map, not a vector

    feature_map = _save_module(tmp_path / "map", FeatureMap())
    with pytest.raises(HubModuleError, match=r"returns shape \(None, 8, 8, 4\); expected a feature vector"):
        HubBackbone(str(feature_map))(keras.Input((8, 8, 3)))
    with pytest.raises(HubModuleError, match=r"rejects input \(None, 20, 20, 3\).*accepts \(None, 16, 16, 3\)") as exc:
        HubBackbone(str(module_dir))(keras.Input((20, 20, 3)))
    assert "\n" not in str(exc.value)


def test_padding_frames_the_image_in_black():
    from sensorium.models.blocks.image_preprocessing import ImagePreprocessing

    layer = ImagePreprocessing((28, 28), channels=1, padding=4)
    out = np.asarray(layer(np.full((1, 8, 8, 3), 255, np.uint8)))
    assert out.shape == (1, 28, 28, 1)
    assert np.all(out[:, :4] == 0) and np.all(out[:, -4:] == 0) and np.all(out[:, :, :4] == 0)
    np.testing.assert_allclose(out[0, 4:24, 4:24], 1.0, atol=1e-3)
    assert ImagePreprocessing.from_config(layer.get_config()).padding == 4
    with pytest.raises(ValueError, match="padding"):
        ImagePreprocessing((8, 8), padding=4)
