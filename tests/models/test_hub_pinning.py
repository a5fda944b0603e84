"""Loading a `.keras` file never fetches a hub module from the network and loads a module's graph only
from the folder pinned at training time (SHA-256 of saved_model.pb and variables/), unless the user
re-trusts a folder; a backbone from our own exported hub module travels inside the .keras."""
from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest

from sensorium.pipelines.common.artifacts import load_keras
from sensorium.runtime.errors import ModelError

LABELS = ["a", "b"]
PIXELS = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)


def _foreign_module(path, seed: int = 1):
    """A tiny reusable SavedModel that is not ours (no Keras network recorded): images -> 5 features."""
    import tensorflow as tf

    class Pooler(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.random.stateless_normal((3, 5), seed=(seed, 2)), name="w")

        @tf.function(input_signature=[tf.TensorSpec((None, 16, 16, 3), tf.float32), tf.TensorSpec((), tf.bool)])
        def __call__(self, images, training=False):
            return tf.reduce_mean(images, axis=[1, 2]) @ self.w  # (B, 5)

    tf.saved_model.save(Pooler(), str(path))
    return path


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """(module folder, .keras of an image classifier whose backbone is that module, its predictions)."""
    from sensorium.models.image import ImageClassifierSpec, build_image_classifier

    root = tmp_path_factory.mktemp("pinning")
    module = _foreign_module(root / "module")
    model = build_image_classifier(ImageClassifierSpec(backbone=f"hub:{module}", image_size=(16, 16)), 2,
                                   labels=LABELS)
    assert type(model.get_layer("backbone")).__name__ == "HubBackbone"
    model.save(root / "model.keras")
    return module, root / "model.keras", model.predict(PIXELS, verbose=0)


def _hub_layer_config(config):
    """The config dict of the (one) HubBackbone layer in a .keras config.json tree."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") == "HubBackbone":
                found.append(node["config"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    assert len(found) == 1
    return found[0]


def _edited(src, dst, edit):
    """Copy the .keras zip `src` to `dst` with `edit(hub_layer_config)` applied to its config.json."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(_hub_layer_config(config))
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return dst


def _forbid_network(monkeypatch) -> list[str]:
    """From now on, fail if anything resolves a hub handle, opens a URL or loads a SavedModel graph;
    returns the list of such calls (empty when the code kept off them)."""
    import urllib.request

    import tensorflow as tf
    import tensorflow_hub as hub

    calls: list[str] = []

    def forbidden(name):
        def call(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} called while loading a model file")
        return call

    monkeypatch.setattr(hub, "resolve", forbidden("tensorflow_hub.resolve"))
    monkeypatch.setattr(hub, "load", forbidden("tensorflow_hub.load"))
    monkeypatch.setattr(urllib.request, "urlopen", forbidden("urllib.request.urlopen"))
    monkeypatch.setattr(tf.saved_model, "load", forbidden("tf.saved_model.load"))
    return calls


@pytest.fixture
def no_network(monkeypatch):
    return _forbid_network(monkeypatch)


def _change_a_variable(module) -> None:
    """Save the module again in its folder with other variable values (the same code)."""
    shutil.rmtree(module)
    _foreign_module(module, seed=7)


def _refused(path, *fragments):
    with pytest.raises(ModelError) as exc:
        load_keras(path)
    message = str(exc.value)
    assert "\n" not in message and str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_the_keras_file_records_the_resolved_folder_and_hashes(foreign):
    module, keras_file, _ = foreign
    with zipfile.ZipFile(keras_file) as zf:
        config = _hub_layer_config(json.loads(zf.read("config.json")))
    assert config["handle"] == str(module.resolve()) and config["origin"] == str(module)
    assert set(config["pin"]) == {"saved_model.pb", "variables"}
    assert all(len(digest) == 64 for digest in config["pin"].values())


def test_a_pinned_module_loads_as_saved(foreign):
    _, keras_file, want = foreign
    np.testing.assert_allclose(load_keras(keras_file).predict(PIXELS, verbose=0), want, atol=1e-6)


@pytest.mark.parametrize("keep_pin", [True, False])
def test_a_url_handle_is_refused_without_network(foreign, tmp_path, no_network, keep_pin):
    _, keras_file, _ = foreign

    def to_url(config):
        config["handle"] = "http://127.0.0.1:9/evil.tar.gz"
        if not keep_pin:
            config.pop("pin")

    evil = _edited(keras_file, tmp_path / "evil.keras", to_url)
    _refused(evil, "remote hub module 'http://127.0.0.1:9/evil.tar.gz'", "never downloads", "--trust-hub-module")
    assert no_network == []


def test_classify_refuses_a_url_handle_in_one_line(foreign, tmp_path, no_network, capsys):
    from PIL import Image

    from sensorium.apps import classify as classify_app

    _, keras_file, _ = foreign
    evil = _edited(keras_file, tmp_path / "evil.keras", lambda c: c.update(handle="https://example.com/x.tar.gz"))
    Image.fromarray(PIXELS[0]).save(tmp_path / "img.png")
    code = classify_app.main([str(tmp_path / "img.png"), "--model", str(evil), "--runtime", "keras"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "Traceback" not in err, err
    assert "remote hub module 'https://example.com/x.tar.gz'" in errors[0] and "--trust-hub-module" in errors[0]
    assert no_network == []


def test_another_local_folder_is_refused(foreign, tmp_path, monkeypatch):
    module, keras_file, _ = foreign
    other = _foreign_module(tmp_path / "other", seed=7)  # a different module, somewhere else
    swapped = _edited(keras_file, tmp_path / "swapped.keras", lambda c: c.update(handle=str(other)))
    _refused(swapped, f"hub module {other} changed", "SHA-256 pinned", f"--trust-hub-module {other}")
    unpinned = _edited(keras_file, tmp_path / "unpinned.keras", lambda c: (c.update(handle=str(other)), c.pop("pin")))
    _refused(unpinned, f"hub module {other} is not pinned", f"--trust-hub-module {other}")
    relative = _edited(keras_file, tmp_path / "relative.keras", lambda c: c.update(handle="module"))
    monkeypatch.chdir(module.parent)  # "module" names the pinned folder from here, and still is refused
    _refused(relative, "hub module module is not pinned")


def test_a_changed_module_is_refused_until_trusted(foreign, tmp_path, monkeypatch):
    module, keras_file, want = foreign
    copy = shutil.copytree(module, tmp_path / "module")
    moved = _edited(keras_file, tmp_path / "model.keras", lambda c: c.update(handle=str(copy)))
    assert load_keras(moved) is not None  # the same files elsewhere: the pinned hashes match
    _change_a_variable(copy)
    _refused(moved, "variables differ from the SHA-256 pinned", f"--trust-hub-module {copy}",
             f"SENSORIUM_TRUST_HUB_MODULE={copy}")
    monkeypatch.setenv("SENSORIUM_TRUST_HUB_MODULE", str(copy))
    again = load_keras(moved)  # re-trusted: re-pinned as it is now (the .keras keeps its own weights)
    with zipfile.ZipFile(moved) as zf:
        recorded = _hub_layer_config(json.loads(zf.read("config.json")))["pin"]
    assert again.get_layer("backbone").get_config()["pin"]["variables"] != recorded["variables"]
    np.testing.assert_allclose(again.predict(PIXELS, verbose=0), want, atol=1e-6)


def test_a_missing_module_is_refused_and_a_trusted_new_place_is_used(foreign, tmp_path, monkeypatch):
    module, keras_file, want = foreign
    gone = _edited(keras_file, tmp_path / "gone.keras", lambda c: c.update(handle=str(tmp_path / "moved-away")))
    _refused(gone, f"hub module folder {tmp_path / 'moved-away'} that the model file names is missing",
             "--trust-hub-module DIR")
    monkeypatch.setenv("SENSORIUM_TRUST_HUB_MODULE", str(module))
    np.testing.assert_allclose(load_keras(gone).predict(PIXELS, verbose=0), want, atol=1e-6)


def test_trust_option_reaches_the_loader_for_the_command_only(foreign, tmp_path, capsys, monkeypatch):
    import os

    from PIL import Image

    from sensorium.apps import classify as classify_app

    module, keras_file, _ = foreign
    monkeypatch.delenv("SENSORIUM_TRUST_HUB_MODULE", raising=False)
    copy = shutil.copytree(module, tmp_path / "module")
    moved = _edited(keras_file, tmp_path / "model.keras", lambda c: c.update(handle=str(copy)))
    _change_a_variable(copy)
    Image.fromarray(PIXELS[0]).resize((40, 40)).save(tmp_path / "img.png")  # a backbone model needs >= 32 px
    argv = [str(tmp_path / "img.png"), "--model", str(moved), "--runtime", "keras", "--json"]
    assert classify_app.main(argv) == 1
    assert "variables differ" in capsys.readouterr().err
    assert classify_app.main([*argv, "--trust-hub-module", str(copy)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["ok"]
    assert "SENSORIUM_TRUST_HUB_MODULE" not in os.environ


def test_our_own_module_travels_inside_the_keras_file(tmp_path, monkeypatch):
    """`--backbone hub:MODULE` of a module Sensorium exported: the backbone is its Keras network with the
    module's weights, and the model loads (same outputs) after the module folder is deleted."""
    import keras

    from sensorium.export.hub_module import write_hub_module
    from sensorium.models.backbones.hub import load_module_at
    from sensorium.models.image import ImageClassifierSpec, build_image_classifier

    keras.utils.set_random_seed(0)
    source = build_image_classifier(ImageClassifierSpec(image_size=(16, 16), channels=3, widths=(4, 8)), 3)
    module = write_hub_module(source, tmp_path / "module", image_size=(16, 16), meta={"task": "image"})
    assert "network" in json.loads((module / "assets" / "sensorium.json").read_text())["keras"]
    model = build_image_classifier(ImageClassifierSpec(backbone=f"hub:{module}"), 2, labels=LABELS)
    backbone = model.get_layer("backbone")
    assert type(backbone).__name__ == "EmbeddedBackbone"
    images = PIXELS.astype("float32") / 255.0  # exact pixel values: the module's rounding is the identity
    features = load_module_at(module, "module")(images, False).numpy()
    np.testing.assert_allclose(backbone(images).numpy(), features, atol=1e-5)
    model.save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as zf:
        assert "HubBackbone" not in zf.read("config.json").decode()
    shutil.rmtree(module)
    calls = _forbid_network(monkeypatch)
    again = load_keras(tmp_path / "model.keras")
    assert calls == []
    np.testing.assert_allclose(again.predict(PIXELS, verbose=0), model.predict(PIXELS, verbose=0), atol=1e-6)


def test_an_older_module_of_ours_is_wrapped_and_pinned(tmp_path):
    """A module exported before the Keras network was recorded falls back to the pinned wrapper."""
    from sensorium.export.hub_module import write_hub_module
    from sensorium.models.image import ImageClassifierSpec, build_image_classifier

    source = build_image_classifier(ImageClassifierSpec(image_size=(16, 16), channels=3, widths=(4, 8)), 3)
    module = write_hub_module(source, tmp_path / "module", image_size=(16, 16), meta={})
    meta_file = module / "assets" / "sensorium.json"
    meta_file.write_text(json.dumps({k: v for k, v in json.loads(meta_file.read_text()).items() if k != "keras"}))
    model = build_image_classifier(ImageClassifierSpec(backbone=f"hub:{module}"), 2, labels=LABELS)
    backbone = model.get_layer("backbone")
    assert type(backbone).__name__ == "HubBackbone" and backbone.pin.path == module.resolve()
