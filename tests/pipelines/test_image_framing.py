"""`python -m sensorium.pipelines.image.framing`: ContentFraming put in front of a trained network."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sensorium.apps import main as sensorium_app
from sensorium.pipelines.image import framing
from sensorium.runtime.errors import ModelError

TINY = ["--image-size", "16", "--widths", "4,8", "--batch-size", "8", "--seed", "1", "--patience", "0",
        "--backbone", "none", "--channels", "1", "-q"]


@pytest.fixture(scope="module")
def scratch_run(image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("framing") / "run"
    assert sensorium_app.main(["train", "image", "--data", str(image_folder), "--out", str(out), "--epochs", "2",
                               *TINY]) == 0
    return out


def test_reframed_run_keeps_every_weight_and_reframes_inside_the_model(scratch_run, tmp_path, make_shape_image):
    from sensorium.pipelines.common.artifacts import load_keras

    out = framing.main(["--model", str(scratch_run), "--out", str(tmp_path / "framed")])
    assert out == 0
    framed_dir = tmp_path / "framed"
    manifest = json.loads((framed_dir / "sensorium.json").read_text())
    config = json.loads((framed_dir / "config.json").read_text())
    assert manifest["status"] == "complete" and manifest["summary"]["framing"]["threshold"] == 0.25
    assert config["model"]["framing"] == {"fraction": 0.7143, "threshold": 0.25}
    assert (framed_dir / "metrics.json").is_file() and "content framing" in (framed_dir / "model_card.md").read_text()

    source, framed = load_keras(scratch_run / "model.keras"), load_keras(framed_dir / "model.keras")
    assert framed.get_layer("framing").__class__.__name__ == "ContentFraming"
    for layer in source.layers:
        for a, b in zip(layer.get_weights(), framed.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)
    # a shape in a corner reaches the network as it would centred: the framed model answers alike for both
    square = make_shape_image("square")  # (16, 16, 3): an 8x8 square at rows/cols 4..11, on dark noise
    corner = np.zeros_like(square)
    corner[:8, :8] = square[4:12, 4:12]
    centred = np.zeros_like(square)
    centred[4:12, 4:12] = square[4:12, 4:12]
    probs = framed.predict(np.stack([corner, centred]), verbose=0)  # (2, classes)
    np.testing.assert_allclose(probs[0], probs[1], atol=1e-4)
    raw = source.predict(np.stack([corner, centred]), verbose=0)
    assert np.abs(raw[0] - raw[1]).max() > 1e-3  # without the layer the network sees two different images


def test_refusals_are_one_line(scratch_run, tmp_path, capsys):
    with pytest.raises(ModelError, match="already re-frames"):
        framing.reframe_run(_bundled("mnist"), tmp_path / "a")
    with pytest.raises(ModelError, match="pretrained-backbone model"):
        framing.reframe_run(_bundled("imagenet"), tmp_path / "b")
    with pytest.raises(ModelError, match="new folder"):
        framing.reframe_run(scratch_run, scratch_run, overwrite=True)
    assert framing.main(["--model", str(scratch_run), "--out", str(tmp_path / "c"), "--fraction", "1.5"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "fraction" in err[0], err
    assert not (tmp_path / "c").exists()


def _bundled(folder: str):
    from sensorium.runtime.predictor import bundled_model

    return bundled_model("image", {"mnist": "digits", "imagenet": "imagenet"}[folder])[1]
