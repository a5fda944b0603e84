"""A `.keras` zip is checked before Keras (or inspection) reads it: config.json over its cap, too many
members, or a zip bomb are refused in one line that names the file, and Keras never sees them."""
from __future__ import annotations

import zipfile

import pytest

from sensorium.pipelines.common import artifacts
from sensorium.pipelines.common.artifacts import inspect_artifact, load_keras
from sensorium.runtime.errors import ModelError


@pytest.fixture(scope="module")
def small_keras(tmp_path_factory):
    import keras

    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    path = tmp_path_factory.mktemp("zip") / "small.keras"
    model.save(path)
    return path


@pytest.fixture
def keras_never_loads(monkeypatch):
    import keras

    def forbidden(*args, **kwargs):
        raise AssertionError("keras.saving.load_model reached")

    monkeypatch.setattr(keras.saving, "load_model", forbidden)


def _with_members(src, dst, extra: dict[str, bytes], *, replace: dict[str, bytes] | None = None):
    """Copy the .keras zip `src` to `dst`, members in `replace` rewritten, `extra` added (deflated)."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, replace.get(item.filename, zin.read(item.filename)))
        for name, data in extra.items():
            zout.writestr(name, data)
    return dst


def _refused_everywhere(path, fragment):
    for read in (load_keras, inspect_artifact):
        with pytest.raises(ModelError) as exc:
            read(path)
        message = str(exc.value)
        assert "\n" not in message and str(path) in message and fragment in message, message


def test_a_normal_keras_file_passes(small_keras):
    assert load_keras(small_keras).output.shape == (None, 1)
    assert inspect_artifact(small_keras).kind == "keras"


def test_config_json_over_the_cap_is_refused_unread(small_keras, tmp_path, keras_never_loads):
    huge = b"{" + b" " * artifacts.KERAS_CONFIG_MAX_BYTES + b"}"  # valid JSON, one byte per space
    path = _with_members(small_keras, tmp_path / "huge.keras", {}, replace={"config.json": huge})
    assert path.stat().st_size < 1_000_000  # deflated: the size is what it unpacks to
    _refused_everywhere(path, f"over the {artifacts.KERAS_CONFIG_MAX_BYTES}-byte cap")


def test_a_zip_bomb_is_refused(small_keras, tmp_path, keras_never_loads):
    bomb = _with_members(small_keras, tmp_path / "bomb.keras",
                         {"assets/zeros.bin": bytes(artifacts.KERAS_EXPANSION_FLOOR + 1)})
    _refused_everywhere(bomb, "a zip bomb?")


def test_too_many_members_are_refused(small_keras, tmp_path, keras_never_loads):
    many = _with_members(small_keras, tmp_path / "many.keras",
                         {f"assets/{i}": b"" for i in range(artifacts.KERAS_MAX_MEMBERS)})
    _refused_everywhere(many, f"at most {artifacts.KERAS_MAX_MEMBERS}")
