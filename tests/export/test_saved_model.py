"""SavedModel round trip: export, reload with tf.saved_model.load, compare with Keras, classify with it."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    from sensorium.models.image import ImageClassifierSpec, build_image_classifier

    keras.utils.set_random_seed(0)
    spec = ImageClassifierSpec(image_size=(16, 16), channels=3, widths=(4, 8))
    return build_image_classifier(spec, num_classes=3, labels=["a", "b", "c"])


def test_round_trip_both_signatures(tiny_model, tmp_path):
    import tensorflow as tf

    from sensorium.export.saved_model import export_image_saved_model

    out = export_image_saved_model(tiny_model, tmp_path / "sm", labels=["a", "b", "c"], image_size=(16, 16))
    loaded = tf.saved_model.load(str(out))
    pixels = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    want = tiny_model(pixels, training=False).numpy()
    got = loaded.signatures["serving_default"](pixels=tf.constant(pixels))["probabilities"].numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    encoded = []
    for p in pixels:
        buf = io.BytesIO()
        Image.fromarray(p).save(buf, "PNG")
        encoded.append(buf.getvalue())
    got_bytes = loaded.signatures["serving_bytes"](images=tf.constant(encoded))["probabilities"].numpy()
    np.testing.assert_allclose(got_bytes, want, atol=1e-5)  # same size: decoding is lossless for PNG
    meta = json.loads((out / "assets" / "sensorium.json").read_text())
    assert meta["task"] == "image" and meta["labels"] == ["a", "b", "c"]
    assert (out / "assets" / "labels.txt").read_text().split() == ["a", "b", "c"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_classify_with_saved_model(tiny_model, tmp_path, capsys):
    from sensorium.apps import classify as classify_app
    from sensorium.export.saved_model import export_image_saved_model

    out = export_image_saved_model(tiny_model, tmp_path / "sm", labels=["a", "b", "c"], image_size=(16, 16))
    img = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "x.png")
    assert classify_app.main([str(tmp_path / "x.png"), "--model", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    resized = np.asarray(Image.fromarray(img).resize((16, 16), Image.BILINEAR))[None]
    want = tiny_model(resized, training=False).numpy()[0]
    assert result["label"] == ["a", "b", "c"][int(np.argmax(want))]
    assert abs(result["score"] - float(want.max())) < 1e-4
