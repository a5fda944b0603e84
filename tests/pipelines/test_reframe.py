"""The scripted re-framings of `builtin:mnist-reframed` do what they say, on a synthetic digit."""
from __future__ import annotations

import numpy as np
import pytest

from sensorium.pipelines.datasets.reframe import FRAMINGS, fill_frame, half_size, reframe, shifted


def _digit() -> np.ndarray:
    """A 28x28 'digit' like MNIST's: a 20-high, 12-wide stroke box centred in the frame."""
    img = np.zeros((28, 28), np.uint8)
    img[4:24, 8:20] = 40
    img[4:24, 12:16] = 255  # a vertical bar inside the box
    return img


def _box(img: np.ndarray, threshold: int = 0) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(img > threshold)
    return rows.min(), rows.max(), cols.min(), cols.max()


def test_fill_frame_spans_the_frame_and_keeps_the_aspect():
    top, bottom, left, right = _box(fill_frame(_digit()))
    assert (top, bottom) == (0, 27)  # the longer side fills the 28 px
    assert 15 <= right - left + 1 <= 19  # 12 * 28 / 20 = 16.8, resampling blurs a pixel either side
    assert abs((left + right) / 2 - 13.5) <= 1.0


def test_half_size_shrinks_about_the_centre():
    img = half_size(_digit())
    top, bottom, left, right = _box(img, threshold=10)
    assert 9 <= bottom - top + 1 <= 12 and 5 <= right - left + 1 <= 9  # 20x12 halved, plus resampling blur
    assert abs((top + bottom) / 2 - 13.5) <= 1.0
    assert img.sum() == pytest.approx(_digit().sum() / 4, rel=0.05)  # a quarter of the area, the same ink


def test_shifted_moves_by_the_offset_and_drops_what_leaves_the_frame():
    img = _digit()
    moved = shifted(img, 6, -6)
    assert _box(moved) == (10, 27, 2, 13)  # 4+6 .. 23+6 cut at 27; 8-6 .. 19-6
    np.testing.assert_array_equal(moved[10:28, 2:14], img[4:22, 8:20])
    np.testing.assert_array_equal(shifted(img, 0, 0), img)


def test_reframe_is_deterministic_and_covers_each_framing():
    batch = np.stack([_digit()] * 8)
    for framing in FRAMINGS:
        out = reframe(batch, framing)
        assert out.shape == batch.shape and out.dtype == np.uint8
        assert not np.array_equal(out, batch)
        np.testing.assert_array_equal(out, reframe(batch, framing))
    small = np.stack([shifted(half_size(_digit()), 0, 0)] * 8)  # 7 px clear of every edge: nothing is cut
    offsets = {tuple(np.subtract(_box(im)[::2], _box(small[0])[::2])) for im in reframe(small, "shift")}
    assert offsets <= {(6, 6), (6, -6), (-6, 6), (-6, -6)} and len(offsets) > 1
    with pytest.raises(ValueError, match="unknown framing"):
        reframe(batch, "tilt")
