"""Images for the generative tasks: any image data spec -> batched uint8 pixel datasets.

The image task's loaders do the reading (folders, manifests, TFDS, builtin:), so every spec that
`train image` takes works here. Labels are not trained on; they only serve the optional class filter
(`--classes 0,1,...,8`: e.g. an anomaly detector that never sees 9s) and per-class evaluation.
Pixels stay uint8 RGB (B, H, W, 3): scaling, grayscale and resizing happen inside the models.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from sensorium.pipelines.common.dataspec import DataSpec, parse_spec
from sensorium.pipelines.generative.config import DataConfig
from sensorium.pipelines.image.data import ImageSplit, load_split, load_train_validation
from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)


def keep_classes(split: ImageSplit, classes: list[str] | None) -> ImageSplit:
    """The images of `split` whose class is one of `classes` (all of them when None)."""
    if not classes:
        return split
    wanted = [str(c) for c in classes]
    unknown = [c for c in wanted if c not in split.labels]
    if unknown:
        raise DataError(f"{split.spec}: no class {', '.join(unknown)} (classes: {', '.join(split.labels[:20])}"
                        f"{', ...' if len(split.labels) > 20 else ''})")
    if split.y is None or len(split.y) != split.count:
        raise DataError(f"{split.spec}: --classes needs the labels of every image up front; this source streams "
                        "(use a folder or manifest, or a smaller split)")
    index = np.asarray([split.labels.index(c) for c in wanted])
    keep = np.flatnonzero(np.isin(split.y, index))
    if keep.size == 0:
        raise DataError(f"{split.spec} ({split.split}): no images of the classes {', '.join(wanted)}")
    ids = [split.ids[i] for i in keep]
    if split.x is not None:
        return ImageSplit(split.spec, split.split, split.labels, ids, x=split.x[keep], y=split.y[keep],
                          failures=split.failures)
    stream = split.stream
    labels = np.asarray(index)

    def filtered():
        import tensorflow as tf

        allowed = tf.constant(labels, tf.int64)
        return stream().filter(lambda img, label: tf.reduce_any(tf.equal(tf.cast(label, tf.int64), allowed)))

    return ImageSplit(split.spec, split.split, split.labels, ids, y=split.y[keep], stream=filtered,
                      failures=split.failures)


def load_train_images(cfg: DataConfig, *, seed: int, image_size: tuple[int, int]) -> tuple[ImageSplit, ImageSplit]:
    """The training images and the validation images (the source's own validation split, the user's,
    or a seeded holdout of train), both filtered to `cfg.classes`."""
    train, val = load_train_validation(cfg, seed=seed, image_size=image_size)
    train, val = keep_classes(train, cfg.classes), keep_classes(val, cfg.classes)
    if train.count < 2:
        raise DataError(f"{cfg.spec}: too few training images ({train.count})")
    if val.count < 1:
        raise DataError(f"{cfg.spec}: no validation images; give --validation-data")
    return train, val


def load_images(spec: str | DataSpec, cfg: DataConfig, *, seed: int, image_size: tuple[int, int],
                default_split: str | None = "test") -> ImageSplit:
    """The images one data spec names (default split: @test), with their labels when the source has any."""
    return load_split(parse_spec(spec) if isinstance(spec, str) else spec, cfg, seed=seed, image_size=image_size,
                      default_split=default_split)


def pixels_dataset(split: ImageSplit, batch_size: int, *, training: bool = False, seed: int = 0) -> Any:
    """A batched tf.data.Dataset of uint8 pixels (B, H, W, 3) only (labels dropped)."""
    return split.dataset(batch_size, training=training, seed=seed).map(lambda x, y: x)


def take_pixels(split: ImageSplit, count: int | None = None, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """`count` images of `split` (all when None) -> (uint8 (N, H, W, 3), int labels (N,) or None).

    A part of an in-memory split is a seeded random subset kept in split order (splits are often
    sorted by class, so their first images are not a sample of them); a streamed split gives its
    first `count` images."""
    if split.x is not None:
        n = split.count
        if count is None or count >= n:
            return split.x, (None if split.y is None else np.asarray(split.y))
        idx = np.sort(np.random.default_rng(seed).choice(n, size=count, replace=False))
        return split.x[idx], (None if split.y is None else np.asarray(split.y)[idx])
    xs, ys, total = [], [], 0
    for x, y in split.dataset(256).as_numpy_iterator():
        xs.append(x)
        ys.append(y)
        total += len(x)
        if count is not None and total >= count:
            break
    if not xs:
        raise DataError(f"{split.spec}: no images")
    x, y = np.concatenate(xs), np.concatenate(ys)
    return (x, y) if count is None else (x[:count], y[:count])
