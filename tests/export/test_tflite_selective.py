"""int8 files keep float32 where 8 bits break a computation: ContentFraming, and a many-class softmax."""
from __future__ import annotations

import numpy as np
import pytest

from sensorium.export.tflite import MAX_UINT8_CLASSES, convert
from sensorium.models.image import ImageClassifierSpec, build_image_classifier
from sensorium.runtime.tflite import EdgeModel


def _digits(n: int) -> np.ndarray:
    """(n, 28, 28, 3) uint8: bright strokes of random size and place on black."""
    rng = np.random.default_rng(0)
    x = np.zeros((n, 28, 28, 3), np.uint8)
    for i in range(n):
        h, w = rng.integers(4, 24), rng.integers(2, 12)
        top, left = rng.integers(0, 28 - h), rng.integers(0, 28 - w)
        x[i, top:top + h, left:left + w] = rng.integers(120, 256)
    return x


@pytest.mark.parametrize("classes", [10, MAX_UINT8_CLASSES + 8])
def test_int8_with_framing_keeps_uint8_pixels_in_and_agrees_with_keras(tmp_path, classes):
    spec = ImageClassifierSpec(channels=1, widths=(8, 16), framing={"fraction": 0.7143})
    model = build_image_classifier(spec, classes)
    x = _digits(240)
    path = tmp_path / "m.tflite"
    calibration = [x[i:i + 1] for i in range(200)]
    path.write_bytes(convert(model, input_shape=(28, 28, 3), quantize="int8", calibration=calibration))
    edge = EdgeModel(path)
    assert edge.input["dtype"] == np.uint8  # raw pixels, as every int8 file
    assert edge.output["dtype"] == (np.float32 if classes > MAX_UINT8_CLASSES else np.uint8)
    ops = {d["op_name"] for d in edge.interpreter._get_ops_details()}
    assert "BATCH_MATMUL" in ops and "CONV_2D" in ops
    keras_probs = model.predict(x[200:], verbose=0)
    edge_probs = np.concatenate([edge(x[i:i + 1]) for i in range(200, 240)])
    assert np.abs(edge_probs - keras_probs).max() < 0.05
