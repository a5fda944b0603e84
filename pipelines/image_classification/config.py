"""Configuration of the image-classification task (written to RUN_DIR/config.json, valid --config input)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sensorium.models.image_classifier import ImageClassifierSpec


@dataclass
class DataConfig:
    """Where the images come from and how they are read."""

    spec: str = "builtin:mnist"
    validation_spec: str | None = None  # default: the source's validation split, else a holdout of train
    validation_fraction: float = 0.1  # holdout size for sources with train/test splits only
    data_dir: str | None = None  # TFDS data_dir
    download: bool = False  # let TFDS download (needs internet)
    path_column: str | None = None  # manifest columns (default: path/file/filename/image)
    label_column: str | None = None  # (default: label/class/category)
    cache_limit_mb: int = 2048  # decoded images are cached in memory below this size


@dataclass
class TrainConfig:
    """Optimisation settings."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 2e-3
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = 1e-4  # adamw only
    momentum: float = 0.9  # sgd only
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: int = 1
    early_stopping_patience: int = 8
    monitor: str = "val_accuracy"
    strategy: Literal["auto", "default", "mirrored"] = "auto"
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    top_k: int = 5


@dataclass
class ImageClassificationConfig:
    """Everything a run needs; `seed` fixes splits, initialisation and shuffling."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ImageClassifierSpec = field(default_factory=ImageClassifierSpec)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 42
    evaluate_on: str | None = "test"  # split evaluated at the end of training (None: skip)
