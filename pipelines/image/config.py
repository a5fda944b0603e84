"""Configuration of the image-classification task (written to RUN_DIR/config.json, valid --config input)."""
from __future__ import annotations

from dataclasses import dataclass, field

from sensorium.models.image import ImageClassifierSpec
from sensorium.pipelines.common.training import TrainSettings
from sensorium.pipelines.tuning.space import Choice, Float, Int, SearchSpace


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
class TrainConfig(TrainSettings):
    """Optimisation settings (the shared ones, plus top-k and backbone fine-tuning)."""

    top_k: int = 5
    # Two-phase fine-tuning of a backbone (model.backbone): `epochs` train the head with the backbone
    # frozen, then `finetune_epochs` train the backbone too at `finetune_learning_rate`, only the
    # backbone variables matching `finetune_pattern` (a regex; None: all of them).
    finetune_epochs: int | None = None  # None: pipelines/image/defaults.py's rule (10 after the auto backbone, else 0)
    finetune_learning_rate: float = 1e-4
    finetune_pattern: str | None = None


@dataclass
class ImageClassificationConfig:
    """Everything a run needs; `seed` fixes splits, initialisation and shuffling."""

    data: DataConfig = field(default_factory=DataConfig)
    # backbone "auto": pipelines/image/defaults.py picks (pretrained for colour images >= 32 px); "none": scratch
    model: ImageClassifierSpec = field(default_factory=lambda: ImageClassifierSpec(backbone="auto"))
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 42
    evaluate_on: str | None = "test"  # split evaluated at the end of training (None: skip)

    def validate(self) -> None:
        """Reject values no run can use (UsageError) and unusable data specs (DataError)."""
        from sensorium.pipelines.common.training import check_config

        checks = self.train.checks() + [
            (0 < self.data.validation_fraction < 1, "data.validation_fraction must be between 0 and 1"),
            (self.model.channels in (1, 3), "model.channels must be 1 or 3"),
            (self.model.image_size is None or (len(self.model.image_size) == 2 and min(self.model.image_size) >= 1),
             "model.image_size must be two positive sizes"),
            (self.model.padding >= 0, "model.padding must be >= 0"),
            (self.model.image_size is None or 2 * self.model.padding < min(self.model.image_size),
             "model.padding must leave room for the image inside model.image_size"),
            (self.train.finetune_epochs is None or self.train.finetune_epochs >= 0,
             "train.finetune_epochs must be >= 0"),
            (self.train.finetune_learning_rate > 0, "train.finetune_learning_rate must be positive"),
            (not self.train.finetune_epochs or self.model.backbone not in (None, "", "none"),
             "train.finetune_epochs needs a backbone (--backbone)"),
            (bool(self.model.widths) and min(self.model.widths) >= 1, "model.widths must be positive"),
            (0 <= self.model.dropout < 1, "model.dropout must be in [0, 1)"),
        ]
        if self.train.finetune_pattern:
            import re

            try:
                re.compile(self.train.finetune_pattern)
            except re.error as exc:
                checks.append((False, f"train.finetune_pattern is not a valid regex: {exc}"))
        if self.model.backbone not in (None, "", "none", "auto"):
            from sensorium.models.backbones.hub import HubModuleError
            from sensorium.models.backbones.registry import parse_backbone

            try:
                parse_backbone(self.model.backbone)
            except HubModuleError as exc:
                checks.append((False, str(exc)))
        check_config(checks, self.data)
        if self.data.spec.startswith("builtin:"):
            from sensorium.pipelines.common.dataspec import parse_spec
            from sensorium.pipelines.datasets.registry import get_builtin

            get_builtin(parse_spec(self.data.spec).name, "image")


# What `sensorium tune image` varies (narrow it with --space FILE). The objective is the validation
# accuracy of the epoch the run keeps.
SEARCH_SPACE = SearchSpace(
    task="image", objective="val_accuracy", direction="max",
    params=(
        Float("train.learning_rate", 3e-4, 1e-2, log=True, help="peak learning rate"),
        Choice("train.batch_size", [16, 32, 64, 128], help="batch size"),
        Choice("model.widths", [[16, 32], [32, 64], [16, 32, 64], [32, 64, 128], [64, 128, 256]],
               help="filters per stage: the width and (by its length) the depth"),
        Int("model.blocks_per_stage", 1, 2, help="residual blocks per stage (depth)"),
        Float("model.dropout", 0.0, 0.5, step=0.1, help="dropout before the classifier"),
    ),
)
