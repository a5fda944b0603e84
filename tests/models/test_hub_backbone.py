"""HubBackbone: a hub module exported by the tests themselves, loaded offline by path and file://,
fine-tuned with Adam (weights change), frozen (weights stay), saved and reloaded as .keras."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory):
    import keras

    from sensorium.export.hub_module import write_hub_module
    from sensorium.models.image import ImageClassifierSpec, build_image_classifier

    keras.utils.set_random_seed(0)
    spec = ImageClassifierSpec(image_size=(16, 16), channels=3, widths=(4, 8), augmentation={"rotation": 0.05})
    model = build_image_classifier(spec, num_classes=3, labels=["a", "b", "c"])
    return write_hub_module(model, tmp_path_factory.mktemp("hub") / "module", image_size=(16, 16),
                            meta={"task": "image"})


def _model(handle, **kwargs):
    import keras

    from sensorium.models.backbones.hub import HubBackbone

    inp = keras.Input((16, 16, 3))
    features = HubBackbone(handle, name="backbone", **kwargs)(inp)  # (B, 8)
    out = keras.layers.Dense(3, activation="softmax", name="head")(features)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    return model


DATA = np.random.default_rng(0).random((16, 16, 16, 3)).astype("float32"), np.arange(16) % 3


@pytest.mark.parametrize("scheme", ["path", "file"])
def test_fine_tuning_updates_the_module(module_dir, scheme):
    handle = str(module_dir) if scheme == "path" else module_dir.as_uri()
    model = _model(handle)
    backbone = model.get_layer("backbone")
    assert model.output.shape == (None, 3) and backbone.output.shape == (None, 8)
    before = [v.numpy().copy() for v in backbone.module.trainable_variables]
    assert len(backbone.trainable_weights) == len(before) > 0
    model.fit(*DATA, epochs=1, batch_size=16, verbose=0)
    after = [v.numpy() for v in backbone.module.trainable_variables]
    assert any(not np.allclose(b, a) for b, a in zip(before, after))


def test_frozen_backbone_and_name_pattern(module_dir):
    model = _model(str(module_dir))
    backbone = model.get_layer("backbone")
    backbone.trainable = False
    model.compile("adam", "sparse_categorical_crossentropy")
    before = [v.numpy().copy() for v in backbone.module.variables]
    head_before = model.get_layer("head").kernel.numpy().copy()
    model.fit(*DATA, epochs=1, batch_size=16, verbose=0)
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, backbone.module.variables))
    assert not np.allclose(head_before, model.get_layer("head").kernel.numpy())
    only_bn = _model(str(module_dir), trainable_pattern="gamma|beta").get_layer("backbone")
    assert 0 < len(only_bn.trainable_weights) < len(backbone.module.trainable_variables)


def test_frozen_state_survives_save_and_load(module_dir, tmp_path):
    import warnings

    import keras

    model = _model(str(module_dir))
    model.get_layer("backbone").trainable = False
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(*DATA, epochs=1, batch_size=16, verbose=0)  # the optimizer now holds state for the head only
    head_only = len(model.trainable_weights)
    model.save(tmp_path / "frozen.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Skipping variable loading for optimizer" was the symptom
        again = keras.saving.load_model(tmp_path / "frozen.keras", safe_mode=True)
    assert not again.get_layer("backbone").trainable and len(again.trainable_weights) == head_only == 2


def test_keras_round_trip_in_safe_mode(module_dir, tmp_path):
    import keras

    model = _model(str(module_dir))
    model.fit(*DATA, epochs=1, batch_size=16, verbose=0)
    want = model.predict(DATA[0], verbose=0)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict(DATA[0], verbose=0), want, atol=1e-6)


def test_bad_handles_fail_in_one_line(tmp_path):
    from sensorium.models.backbones.hub import HubBackbone, HubModuleError

    (tmp_path / "empty").mkdir()
    for handle, message in ((str(tmp_path / "missing"), "cannot resolve hub handle"),
                            (str(tmp_path / "empty"), "cannot load hub module")):
        with pytest.raises(HubModuleError, match=message) as exc:
            HubBackbone(handle)
        assert "\n" not in str(exc.value)


def test_export_cli_hub_module_with_parity(tmp_path, capsys):
    import json

    from sensorium.apps import main as sensorium_app

    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    out = tmp_path / "hub"
    code = sensorium_app.main(["export", "--model", str(root / "assets/models/mnist"), "--format", "hub-module",
                               "--out", str(out), "--parity-data", "builtin:mnist@test[:64]", "--json"])
    row = json.loads(capsys.readouterr().out)
    assert code == 0 and row["variant"] == "hub-module" and row["passed"] and row["max_abs_diff"] < 1e-4
    meta = json.loads((out / "assets" / "sensorium.json").read_text())
    assert meta["format"] == "hub-module" and meta["input"]["value_range"] == [0.0, 1.0]


def test_registered_name_resolves_from_the_hub_cache(module_dir, tmp_path, monkeypatch):
    """A pre-downloaded module in TFHUB_CACHE_DIR serves its tfhub.dev handle offline."""
    import hashlib
    import shutil

    from sensorium.models.backbones.registry import HUB_BACKBONES
    from sensorium.models.image import ImageClassifierSpec, build_image_classifier

    handle = HUB_BACKBONES.get("mobilenet_v3_small").handle
    shutil.copytree(module_dir, tmp_path / hashlib.sha1(handle.encode()).hexdigest())  # tensorflow_hub's cache layout
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    model = build_image_classifier(ImageClassifierSpec(backbone="hub:mobilenet_v3_small", image_size=(16, 16)), 3)
    assert model.get_layer("backbone").origin == handle and model.output.shape == (None, 3)
    assert model.predict(np.zeros((2, 16, 16, 3), np.uint8), verbose=0).shape == (2, 3)


def test_the_wrapper_is_generic_text_encoder(tmp_path):
    """A text encoder (token ids -> sentence vector) loads, trains and reloads through the same layer."""
    import keras
    import tensorflow as tf

    from sensorium.models.backbones.hub import HubBackbone

    class Encoder(tf.Module):
        def __init__(self):
            # a plain tf.Module: the loaded object lists no `variables`, the layer finds them itself
            self.embeddings = tf.Variable(tf.random.stateless_normal((50, 6), seed=(1, 2)), name="embeddings")

        @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((), tf.bool)])
        def __call__(self, ids, training=False):
            mask = tf.cast(ids > 0, tf.float32)[..., None]  # (B, T, 1), 0 is padding
            vectors = tf.gather(self.embeddings, ids) * mask  # (B, T, 6)
            return tf.reduce_sum(vectors, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)  # (B, 6)

    tf.saved_model.save(Encoder(), str(tmp_path / "encoder"))
    ids = keras.Input((None,), dtype="int32")
    out = keras.layers.Dense(2, activation="softmax")(HubBackbone(str(tmp_path / "encoder"), name="encoder")(ids))
    model = keras.Model(ids, out)
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    x, y = np.array([[1, 2, 3, 0], [4, 5, 0, 0]] * 8, np.int32), np.array([0, 1] * 8)
    before = model.get_layer("encoder").module.embeddings.numpy().copy()
    model.fit(x, y, epochs=3, verbose=0)
    assert not np.allclose(before, model.get_layer("encoder").module.embeddings.numpy())
    model.save(tmp_path / "text.keras")
    again = keras.saving.load_model(tmp_path / "text.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize("trainable, pattern", [(False, None), (True, "kernel")])
def test_embedded_backbone_state_survives_save_and_load(module_dir, tmp_path, trainable, pattern):
    """Our own module as `--backbone hub:` is an EmbeddedBackbone: frozen, or trainable on the pattern's
    weights only, it reloads with the same trainable weights, so the optimizer state loads as saved."""
    import warnings

    import keras

    from sensorium.models.backbones.finetune import set_backbone_trainable
    from sensorium.models.image import ImageClassifierSpec, build_image_classifier

    model = build_image_classifier(ImageClassifierSpec(backbone=f"hub:{module_dir}"), 3)
    backbone = model.get_layer("backbone")
    assert type(backbone).__name__ == "EmbeddedBackbone"
    set_backbone_trainable(backbone, trainable, pattern)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit((DATA[0] * 255).astype("uint8"), DATA[1], epochs=1, batch_size=16, verbose=0)
    want = sorted(w.path for w in model.trainable_weights)
    tuned = [w.path for w in backbone.trainable_weights]
    if trainable:
        assert tuned and all(p.endswith("kernel") for p in tuned)
    else:
        assert tuned == [] and len(want) == 2  # the head's kernel and bias
    model.save(tmp_path / "m.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Skipping variable loading for optimizer": trainable weights differ
        again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert sorted(w.path for w in again.trainable_weights) == want
