"""Sentiment data for training and evaluation: labelled texts -> batched (token ids, label) datasets.

Texts are tokenised once with the run's tokenizer (Python, the same ids the exported files get); a
batch is padded to its longest text only, and training batches group texts of similar length.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensorium.pipelines.common.dataspec import parse_spec
from sensorium.pipelines.common.splits import holdout
from sensorium.pipelines.sentiment.config import TextDataConfig
from sensorium.pipelines.sentiment.sources import TextItems, load_text_items
from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class TextSplit:
    """One split of labelled texts."""

    spec: str
    split: str
    items: TextItems
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> list[str]:
        return self.items.label_names

    def dataset(self, batch_size: int, *, tokenizer: Any = None, max_length: int = 128, training: bool = False,
                seed: int = 0, sample_weights: np.ndarray | None = None):
        """Batched tf.data.Dataset of (int32 ids (B, L) padded with 0, int64 labels (B,)[, weights (B,)]);
        with `tokenizer=None`, (string texts (B,), labels) for models that take text."""
        import tensorflow as tf

        y = self.items.labels
        extra = () if sample_weights is None else (sample_weights[y].astype("float32"),)
        if tokenizer is None:
            ds = tf.data.Dataset.from_tensor_slices((np.asarray(self.items.texts, dtype=object), y, *extra))
            if training:
                ds = ds.shuffle(min(self.count, 50_000), seed=seed, reshuffle_each_iteration=True)
            return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
        ids = tokenizer.encode(self.items.texts, max_length)
        lengths = np.asarray([len(x) for x in ids], np.int64)
        flat = tf.constant(np.concatenate([np.asarray(x, np.int32) for x in ids]) if ids else np.zeros(0, np.int32))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        ds = tf.data.Dataset.from_tensor_slices((starts, lengths, y, *extra)).map(
            lambda start, length, *rest: (flat[start : start + length], *rest))  # (L,) int32 per text
        if training:
            ds = ds.shuffle(min(self.count, 50_000), seed=seed, reshuffle_each_iteration=True)
            # Group similar lengths (less padding), then shuffle the batches again.
            bounds = [b for b in (16, 32, 48, 64, 96, 128, 192, 256, 384, 512) if b < max_length]
            ds = ds.bucket_by_sequence_length(lambda x, *_: tf.shape(x)[0], bucket_boundaries=[b + 1 for b in bounds],
                                              bucket_batch_sizes=[batch_size] * (len(bounds) + 1),
                                              pad_to_bucket_boundary=False)
            ds = ds.shuffle(64, seed=seed + 1, reshuffle_each_iteration=True)
        else:
            ds = ds.padded_batch(batch_size)
        return ds.prefetch(tf.data.AUTOTUNE)


def load_text_split(spec: str, cfg: TextDataConfig, *, seed: int, default_split: str | None,
                    label_names: list[str] | None = None) -> TextSplit:
    parsed = parse_spec(spec)
    items, split = load_text_items(parsed, seed=seed, default_split=default_split, text_column=cfg.text_column,
                                   label_column=cfg.label_column, data_dir=cfg.data_dir, download=cfg.download,
                                   label_names=label_names)
    return TextSplit(spec, split, items, list(items.failures))


def _has_validation(spec_text: str, cfg: TextDataConfig) -> bool:
    """Whether the source has a validation split of its own (TFDS: only if it lists one)."""
    parsed = parse_spec(spec_text)
    if parsed.kind != "tfds":
        return True  # seeded 80/10/10 splits
    try:
        from sensorium.pipelines.common.tfds_source import load_tfds

        load_tfds(parsed.with_split("validation"), "validation", data_dir=cfg.data_dir, download=False)
        return True
    except DataError:
        return False


def load_train_validation(cfg: TextDataConfig, *, seed: int,
                          label_names: list[str] | None = None) -> tuple[TextSplit, TextSplit]:
    """The training split and the validation split (the source's own, or 10% held out of training);
    `label_names` fixes the labels (a warm start's), else they are the training texts'."""
    train = load_text_split(cfg.spec, cfg, seed=seed, default_split="train", label_names=label_names)
    if cfg.validation_spec:
        val = load_text_split(cfg.validation_spec, cfg, seed=seed, default_split="validation",
                              label_names=train.labels)
        return train, val
    parsed = parse_spec(cfg.spec)
    if parsed.split in (None, "train") and _has_validation(cfg.spec, cfg):
        base = cfg.spec.rsplit("@", 1)[0] if parsed.split else cfg.spec
        val = load_text_split(f"{base}@validation", cfg, seed=seed, default_split="validation",
                              label_names=train.labels)
        return train, val
    fit, held = holdout(train.items.labels, seed, 0.1)  # e.g. imdb_reviews: no validation split
    log.info("%s has no validation split: 10%% of the training texts are held out", cfg.spec)

    def part(idx: np.ndarray, name: str) -> TextSplit:
        it = train.items
        return TextSplit(cfg.spec, name, TextItems([it.texts[i] for i in idx], it.labels[idx], it.label_names,
                                                   [it.ids[i] for i in idx]))
    return part(fit, train.split), part(held, "validation (held out of training)")


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse-frequency weights (C,), mean 1 over the training items."""
    counts = np.bincount(labels, minlength=num_classes).astype("float64")
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype("float32")


def describe(split: TextSplit) -> dict[str, Any]:
    counts = np.bincount(split.items.labels, minlength=len(split.labels))
    return {"spec": split.spec, "split": split.split, "count": split.count,
            "per_label": {name: int(c) for name, c in zip(split.labels, counts)}}
