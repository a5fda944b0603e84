"""builtin:photos and the calibration / parity images of the ImageNet classifier."""
from __future__ import annotations

import numpy as np

from sensorium.pipelines.datasets.photos import PHOTOS, load_photos, sample_images


def test_builtin_photos_are_the_packaged_files_with_their_classes():
    test = load_photos()["test"]
    assert len(test) == len(PHOTOS) and all(path.endswith((".png", ".jpg")) for path in test.refs)
    assert [test.label_names[i] for i in test.labels] == [p.label for p in PHOTOS]
    assert test.ids[0] == "photos:chelsea" and "tripod" in test.label_names


def test_sample_images_are_seeded_and_disjoint_between_calibration_and_parity():
    a, b = sample_images(30, 48, 0), sample_images(30, 48, 1)
    assert a.shape == b.shape == (30, 48, 48, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, sample_images(30, 48, 0))
    assert not any(np.array_equal(x, y) for x in a for y in b)
    assert len({x.tobytes() for x in a}) == 30
