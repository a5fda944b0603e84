"""Configuration of the sentiment task (written to RUN_DIR/config.json, valid --config input)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sensorium.models.sentiment import TextClassifierSpec
from sensorium.pipelines.common.training import TrainSettings
from sensorium.pipelines.tuning.space import Choice, Float, Int, SearchSpace
from sensorium.runtime.text_norm import RULES as NORMALIZERS


@dataclass
class TextDataConfig:
    """Where the labelled texts come from and how they are read."""

    spec: str = "builtin:tweets"
    validation_spec: str | None = None  # default: the source's validation split
    data_dir: str | None = None  # TFDS data_dir
    download: bool = False  # let TFDS download (needs internet)
    text_column: str | None = None  # CSV/TSV columns (default: text/sentence/review/tweet/content)
    label_column: str | None = None  # (default: label/sentiment/class/category/polarity)


@dataclass
class SentimentTrainConfig(TrainSettings):
    """Optimisation settings (the shared ones, with text defaults)."""

    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 5e-4
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    weight_decay: float = 0.01
    early_stopping_patience: int = 3
    monitor: str = "val_loss"
    clipnorm: float = 1.0
    class_weights: bool = False  # weight the loss by inverse class frequency (imbalanced labels)
    label_smoothing: float = 0.0  # share of each text's target spread evenly over the classes
    init_from: str | None = None  # warm start: a sentiment model (bundled name, run directory, .keras)
    # What the binary head's lexicon expert hears besides VADER: auto = vader when training from scratch,
    # vader+opinion+words (the opinion lexicon and the domain's own words) with init_from.
    expert: Literal["auto", "vader", "vader+opinion", "vader+opinion+words"] = "auto"

    def opinions(self) -> str:
        """`expert` with auto resolved."""
        if self.expert != "auto":
            return self.expert
        return "vader+opinion+words" if self.init_from else "vader"


@dataclass
class SentimentConfig:
    """Everything a sentiment run needs; `seed` fixes splits, initialisation and shuffling."""

    data: TextDataConfig = field(default_factory=TextDataConfig)
    model: TextClassifierSpec = field(default_factory=TextClassifierSpec)
    train: SentimentTrainConfig = field(default_factory=SentimentTrainConfig)
    seed: int = 42
    evaluate_on: str | None = "test"  # split evaluated at the end of training (None: skip)

    def validate(self) -> None:
        """Reject values no run can use (UsageError) and unusable data specs (DataError)."""
        from sensorium.models.sentiment import LEXICONS
        from sensorium.pipelines.common.training import check_config
        from sensorium.runtime.tokenizer import MIN_VOCAB

        m = self.model
        checks = self.train.checks() + [
            (m.encoder == "transformer" or (m.encoder.startswith("hub:") and len(m.encoder) > 4),
             f"model.encoder must be 'transformer' or 'hub:HANDLE', got {m.encoder!r}"),
            (2 <= m.max_length <= 4096, "model.max_length must be between 2 and 4096"),
            (m.vocab_size >= MIN_VOCAB, f"model.vocab_size must be at least {MIN_VOCAB}"),
            (m.embed_dim >= 1 and m.num_heads >= 1 and m.embed_dim % m.num_heads == 0,
             "model.embed_dim must be a positive multiple of model.num_heads"),
            (m.ff_dim >= 1 and m.num_layers >= 1, "model.ff_dim and model.num_layers must be >= 1"),
            (0 <= m.dropout < 1 and 0 <= m.head_dropout < 1, "model.dropout and head_dropout must be in [0, 1)"),
            (m.text_normalization in NORMALIZERS,
             f"model.text_normalization must be one of {', '.join(NORMALIZERS)}, got {m.text_normalization!r}"),
            (m.text_normalization == "none" or not m.uses_hub,
             "model.text_normalization needs the transformer encoder (a hub encoder reads the raw strings)"),
            (m.lexicon in LEXICONS, f"model.lexicon must be one of {', '.join(LEXICONS)}, got {m.lexicon!r}"),
            (m.lexicon == "none" or m.encoder == "transformer", "model.lexicon needs the transformer encoder"),
            (0 <= m.branch_dropout < 1, "model.branch_dropout must be in [0, 1)"),
            (m.branch_dropout == 0 or m.lexicon != "none", "model.branch_dropout needs a model.lexicon"),
            (0 <= self.train.label_smoothing < 1, "train.label_smoothing must be in [0, 1)"),
        ]
        check_config(checks, self.data)


# What `sensorium tune sentiment` varies (narrow it with --space FILE). The objective is the validation
# accuracy of the epoch the run keeps.
SEARCH_SPACE = SearchSpace(
    task="sentiment", objective="val_accuracy", direction="max",
    params=(
        Float("train.learning_rate", 1e-4, 2e-3, log=True, help="peak learning rate"),
        Choice("train.batch_size", [32, 64, 128], help="batch size"),
        Choice("model.embed_dim", [64, 128, 256], help="Transformer width"),
        Int("model.num_layers", 1, 4, help="Transformer encoder layers (depth)"),
        Float("model.dropout", 0.0, 0.3, step=0.05, help="dropout inside the encoder"),
    ),
)
