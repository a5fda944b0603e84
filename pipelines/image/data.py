"""Image data for training and evaluation: any data spec -> batched (uint8 pixels, label) datasets.

Pixels stay uint8 RGB (B, H, W, 3) all the way: resizing to the model's size and normalisation happen
inside the model, so the exported model takes the same raw input.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.dataspec import DataSpec, parse_spec
from sensorium.pipelines.common.sources import Items, manifest_items, scan_class_folders, select_split
from sensorium.pipelines.common.splits import holdout
from sensorium.pipelines.image.config import DataConfig
from sensorium.runtime.errors import DataError
from sensorium.runtime.image_io import ImageDecodeError, is_image_path, load_image

log = logging.getLogger(__name__)


@dataclass
class ImageSplit:
    """One split, ready to batch. In memory (`x`, `y`) unless it streams (TFDS, or too large)."""

    spec: str
    split: str
    labels: list[str]
    ids: list[str]
    x: np.ndarray | None = None  # (N, H, W, 3) uint8
    y: np.ndarray | None = None  # (N,) int
    stream: Callable[[], Any] | None = None  # () -> tf.data.Dataset of (image, label), unbatched
    failures: list[tuple[str, str]] = field(default_factory=list)  # (item id, error) skipped

    @property
    def count(self) -> int:
        return len(self.ids)

    def dataset(self, batch_size: int, *, training: bool = False, seed: int = 0, fixed: bool = False,
                replicas: int = 1):
        """A batched tf.data.Dataset of (uint8 (B, H, W, 3), int64 (B,)), shuffled in training. With
        `fixed` (training only), fixed-shape batches of `fixed_batch_size(batch_size, replicas)` rows with
        a float32 (B,) sample weight, the last batch padded with weight 0 (pipelines/common/batching.py):
        for models whose losses and metrics take sample weights (the classifier, not the generative
        models' own training steps)."""
        import tensorflow as tf

        from sensorium.pipelines.common.batching import fixed_batches

        if self.x is not None:
            ds = tf.data.Dataset.from_tensor_slices((self.x, self.y))
        else:
            ds = self.stream()
        if training:
            ds = ds.shuffle(min(self.count, 20_000), seed=seed, reshuffle_each_iteration=True)
            if fixed:
                return fixed_batches(ds, batch_size, replicas=replicas).prefetch(tf.data.AUTOTUNE)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _items_for(spec: DataSpec, cfg: DataConfig, seed: int, default_split: str | None) -> tuple[Items, str]:
    if spec.kind == "builtin":
        return select_split(_load_builtin(spec.name), spec, seed=seed, default_split=default_split)
    if spec.kind == "folder":
        items = scan_class_folders(Path(spec.name), is_image_path)
    else:
        items = manifest_items(Path(spec.name), ref_column=cfg.path_column, label_column=cfg.label_column,
                               ref_candidates=("path", "file", "filename", "image"))
    return select_split(items, spec, seed=seed, default_split=default_split)


def _align(items: Items, label_names: list[str] | None) -> Items:
    """Re-index item labels to `label_names` (a trained model's classes)."""
    if label_names is None or items.label_names == label_names:
        return items
    index = {name: i for i, name in enumerate(label_names)}
    unknown = sorted(set(items.label_names) - set(index))
    if unknown:
        raise DataError(f"the data has classes the model does not know: {', '.join(unknown[:10])}")
    mapping = np.asarray([index[n] for n in items.label_names])
    return Items(items.refs, mapping[items.labels], label_names, items.ids, items.extra)


def decode_files(paths: list[str], size: tuple[int, int], *,
                 desc: str = "decoding") -> tuple[np.ndarray, list[int], list[str]]:
    """Decode image files with a thread pool -> (images (N_ok, H, W, 3), ok indices, errors of the rest)."""
    out = np.zeros((len(paths), size[0], size[1], 3), np.uint8)
    ok = np.zeros(len(paths), bool)
    errors: list[str] = [""] * len(paths)

    def work(i: int) -> None:
        try:
            out[i] = load_image(paths[i], size=size)
            ok[i] = True
        except ImageDecodeError as exc:
            errors[i] = str(exc)

    from sensorium.pipelines.common.progress import progress

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        for _ in progress(pool.map(work, range(len(paths))), total=len(paths), desc=desc, unit="img",
                          enabled=len(paths) >= 500, leave=False):
            pass
    idx = np.flatnonzero(ok)
    return out[idx], list(idx), [errors[i] for i in np.flatnonzero(~ok)]


def _from_items(spec: DataSpec, split: str, items: Items, size: tuple[int, int], cfg: DataConfig) -> ImageSplit:
    if isinstance(items.refs, np.ndarray):
        return ImageSplit(spec.text, split, items.label_names, items.ids, x=items.refs, y=items.labels)
    n = len(items)
    if n * size[0] * size[1] * 3 <= cfg.cache_limit_mb * 2**20:
        x, ok, errors = decode_files(items.refs, size, desc=f"decoding {split}")
        bad = sorted(set(range(n)) - set(ok))  # set(ok) once: rebuilding it per item was quadratic
        failures = [(items.ids[i], e) for i, e in zip(bad, errors)]
        for _, err in failures[:5]:
            log.warning("skipped %s", err)
        if len(failures) > 5:
            log.warning("skipped %d more unreadable images", len(failures) - 5)
        if not ok:
            raise DataError(f"{spec.text}: none of the {n} images could be decoded")
        kept = items.take(ok)
        return ImageSplit(spec.text, split, kept.label_names, kept.ids, x=x, y=kept.labels, failures=failures)
    return ImageSplit(spec.text, split, items.label_names, items.ids,
                      stream=lambda: _stream_files(items.refs, items.labels, size), y=items.labels)


def _stream_files(paths: list[str], labels: np.ndarray, size: tuple[int, int]):
    """For data larger than the cache: decode in tf.data, skipping (and logging) unreadable files."""
    import tensorflow as tf

    def decode(path: bytes) -> tuple[np.ndarray, bool]:
        try:
            return load_image(path.decode(), size=size), True
        except ImageDecodeError as exc:
            log.warning("skipped %s", exc)
            return np.zeros((size[0], size[1], 3), np.uint8), False

    def tf_decode(path, label):
        img, ok = tf.numpy_function(decode, [path], [tf.uint8, tf.bool])
        img.set_shape((size[0], size[1], 3))
        return img, label, ok

    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    ds = ds.map(tf_decode, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.filter(lambda img, label, ok: ok).map(lambda img, label, ok: (img, label))


def _from_tfds(spec: DataSpec, default_split: str | None, size: tuple[int, int], cfg: DataConfig,
               label_names: list[str] | None) -> ImageSplit:
    import tensorflow as tf

    from sensorium.pipelines.common.tfds_source import find_feature, load_tfds

    ds, info = load_tfds(spec, default_split, data_dir=cfg.data_dir, download=cfg.download)
    image_key = find_feature(info, ("Image",), "image")
    label_key = find_feature(info, ("ClassLabel",), "class label")
    names = list(info.features[label_key].names)
    if label_names is not None and names != label_names:
        raise DataError(f"tfds:{spec.name} classes do not match the model's classes")

    def convert(ex):
        img = ex[image_key]  # (h, w, c) uint8
        img = tf.cond(tf.shape(img)[-1] == 1, lambda: tf.image.grayscale_to_rgb(img), lambda: img[..., :3])
        img = tf.cast(tf.round(tf.clip_by_value(tf.image.resize(img, size), 0, 255)), tf.uint8)
        return img, tf.cast(ex[label_key], tf.int64)

    split = spec.split or default_split or "train"
    # Small splits are materialised (exact counts, ids, caching); larger ones stream.
    n = int(ds.cardinality().numpy())
    if 0 <= n and n * size[0] * size[1] * 3 <= cfg.cache_limit_mb * 2**20:
        xs, ys = [], []
        for x, y in ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE).batch(256).as_numpy_iterator():
            xs.append(x)
            ys.append(y)
        x, y = np.concatenate(xs), np.concatenate(ys)
        ids = [f"tfds:{spec.name}/{split}:{i}" for i in range(len(y))]
        return ImageSplit(spec.text, split, names, ids, x=x, y=y)
    ids = [f"tfds:{spec.name}/{split}:{i}" for i in range(max(n, 0))]
    return ImageSplit(spec.text, split, names, ids,
                      stream=lambda: ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE))


def load_split(spec: str | DataSpec, cfg: DataConfig, *, seed: int, image_size: tuple[int, int],
               default_split: str | None, label_names: list[str] | None = None) -> ImageSplit:
    """Load the split a spec names (or `default_split`), labels aligned to `label_names` if given."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    size = (int(image_size[0]), int(image_size[1]))
    if spec.kind == "tfds":
        return _from_tfds(spec, default_split, size, cfg, label_names)
    items, split = _items_for(spec, cfg, seed, default_split)
    return _from_items(spec, split, _align(items, label_names), size, cfg)


def load_train_validation(cfg: DataConfig, *, seed: int, image_size: tuple[int, int]) -> tuple[ImageSplit, ImageSplit]:
    """The training split and its validation split (the source's own, the user's, or a holdout)."""
    spec = parse_spec(cfg.spec)
    train_spec = spec if spec.split else parse_spec(f"{spec.text}@train")
    if cfg.validation_spec:
        train = load_split(train_spec, cfg, seed=seed, image_size=image_size, default_split="train")
        val = load_split(cfg.validation_spec, cfg, seed=seed, image_size=image_size,
                         default_split="validation", label_names=train.labels)
        return train, val
    has_validation = spec.kind in ("folder", "manifest") or (
        spec.kind == "tfds" and _tfds_has(spec, "validation", cfg)) or (
        spec.kind == "builtin" and _builtin_has_validation(spec.name))
    if has_validation and spec.split in (None, "train"):
        train = load_split(train_spec, cfg, seed=seed, image_size=image_size, default_split="train")
        val = load_split(spec.source + "@validation", cfg, seed=seed, image_size=image_size,
                         default_split="validation", label_names=train.labels)
        return train, val
    full = load_split(train_spec, cfg, seed=seed, image_size=image_size, default_split="train")
    if full.x is None:
        raise DataError(f"{cfg.spec}: has no validation split and is too large to hold out in memory; "
                        "give --validation-data")
    tr, va = holdout(full.y, seed, cfg.validation_fraction)
    log.info("validation: %d items held out of %s (%.0f%%)", len(va), train_spec.text, 100 * cfg.validation_fraction)
    make = lambda idx, name: ImageSplit(full.spec, name, full.labels, [full.ids[i] for i in idx],
                                        x=full.x[idx], y=full.y[idx], failures=full.failures)
    return make(tr, "train"), make(va, "validation (held out of train)")


def _load_builtin(name: str) -> Items | dict[str, Items]:
    from sensorium.pipelines.datasets.registry import get_builtin

    return get_builtin(name, "image").entry("load")()


def _builtin_has_validation(name: str) -> bool:
    loaded = _load_builtin(name)
    return not isinstance(loaded, dict) or "validation" in loaded


def _tfds_has(spec: DataSpec, split: str, cfg: DataConfig) -> bool:
    try:
        import tensorflow_datasets as tfds

        from sensorium.pipelines.common.tfds_source import default_data_dir

        builder = tfds.builder(spec.name + (f"/{spec.tfds_config}" if spec.tfds_config else ""),
                               data_dir=cfg.data_dir or default_data_dir())
        return split in builder.info.splits
    except Exception:
        return False
