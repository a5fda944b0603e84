"""Configuration of the translation task (written to RUN_DIR/config.json, valid --config input)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from sensorium.models.translation import TranslatorSpec
from sensorium.pipelines.common.training import TrainSettings
from sensorium.pipelines.tuning.space import Choice, Float, Int, SearchSpace


@dataclass
class ParallelDataConfig:
    """Where the sentence pairs come from."""

    spec: str = "builtin:ui-de"
    validation_spec: str | None = None  # default: the source's validation split
    data_dir: str | None = None  # TFDS data_dir
    download: bool = False  # let TFDS download (needs internet)
    language: str | None = None  # folders of .po/.mo catalogues: the target language to read (de, pt_BR, ...)
    source_language: str | None = None  # TFDS translation features: which language is the source
    target_language: str | None = None  # ... and which the target
    # More training pairs (e.g. builtin:debian-de; all pairs of a spec without @split). Pairs whose normalised
    # source is in the validation or test split of `spec` are dropped, so evaluation never sees a training sentence.
    extra_specs: tuple[str, ...] = ()
    extra_pairs_per_epoch: int | None = None  # a fresh random sample of the extra pairs each epoch (None: all)


@dataclass
class TranslationTrainConfig(TrainSettings):
    """Optimisation settings (the shared ones with Transformer defaults) plus label smoothing."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    weight_decay: float = 0.01
    warmup_epochs: int = 2
    early_stopping_patience: int = 5
    monitor: str = "val_loss"
    clipnorm: float = 1.0
    label_smoothing: float = 0.1
    cpu_bf16_default: ClassVar[bool] = True  # bfloat16 steps 1.29x faster; the bundled translator trained in it
    # Long runs (issue 26): validation chrF (greedy, on the first `eval_pairs` validation pairs) every
    # `eval_every_steps` steps (0: at each epoch's end), with a checkpoint each time; stop when chrF gains
    # less than `chrf_min_gain` for `chrf_patience` evaluations in a row (0: never) or after `max_hours`.
    eval_every_steps: int = 0
    eval_pairs: int = 0  # 0: no chrF evaluations (a long run asks for them, e.g. 200)
    chrf_min_gain: float = 0.3
    chrf_patience: int = 0  # 0: no chrF stopping rule (a long run asks for it, e.g. 2)
    max_hours: float | None = None
    keep_checkpoints: int = 3  # step checkpoints kept (at least 2: a corrupt one falls back to the previous)
    average_last: int = 0  # >= 2: the model is the mean of the last K checkpoints' weights
    init_from: str | None = None  # warm start: a translator (bundled name, run directory, .keras) of this shape
    # At the end of a run: beam search's length penalty chosen on the first `length_penalty_pairs`
    # validation pairs at the run's `beam` from this grid (pipelines/translation/length_penalty.py) and
    # recorded in the model; null: the runtime default.
    length_penalty_grid: list[float] | None = None
    length_penalty_pairs: int = 500


@dataclass
class TranslationConfig:
    """Everything a translation run needs; `seed` fixes splits, initialisation and shuffling."""

    data: ParallelDataConfig = field(default_factory=ParallelDataConfig)
    model: TranslatorSpec = field(default_factory=TranslatorSpec)
    train: TranslationTrainConfig = field(default_factory=TranslationTrainConfig)
    seed: int = 42
    evaluate_on: str | None = "test"  # split evaluated at the end of training (None: skip)
    beam: int = 4  # beam of the final evaluation (1: greedy)

    def validate(self) -> None:
        """Reject values no run can use (UsageError) and unusable data specs (DataError)."""
        from sensorium.pipelines.common.training import check_config
        from sensorium.runtime.tokenizer import MIN_VOCAB

        m = self.model
        checks = self.train.checks() + [
            (2 <= m.max_source_length <= 1024 and 2 <= m.max_target_length <= 1024,
             "model.max_source_length and max_target_length must be between 2 and 1024"),
            (m.vocab_size >= MIN_VOCAB, f"model.vocab_size must be at least {MIN_VOCAB}"),
            (m.embed_dim >= 1 and m.num_heads >= 1 and m.embed_dim % m.num_heads == 0,
             "model.embed_dim must be a positive multiple of model.num_heads"),
            (m.ff_dim >= 1 and m.encoder_layers >= 1 and m.decoder_layers >= 1,
             "model.ff_dim, encoder_layers and decoder_layers must be >= 1"),
            (0 <= m.dropout < 1, "model.dropout must be in [0, 1)"),
            (0 <= self.train.label_smoothing < 1, "train.label_smoothing must be in [0, 1)"),
            (self.beam >= 1, "beam must be at least 1"),
            (self.train.eval_every_steps >= 0 and self.train.eval_pairs >= 0,
             "train.eval_every_steps and train.eval_pairs must be >= 0"),
            (self.train.chrf_min_gain >= 0 and self.train.chrf_patience >= 0,
             "train.chrf_min_gain and train.chrf_patience must be >= 0"),
            (self.train.max_hours is None or self.train.max_hours > 0, "train.max_hours must be positive"),
            (self.train.keep_checkpoints >= 2, "train.keep_checkpoints must be at least 2"),
            (self.train.average_last >= 0, "train.average_last must be >= 0"),
            (self.train.length_penalty_grid is None or (
                bool(self.train.length_penalty_grid)
                and all(isinstance(a, (int, float)) and not isinstance(a, bool) and 0 <= a <= 5
                        for a in self.train.length_penalty_grid)),
             "train.length_penalty_grid must be null or a non-empty list of numbers between 0 and 5"),
            (self.train.length_penalty_pairs >= 1, "train.length_penalty_pairs must be at least 1"),
            (self.data.extra_pairs_per_epoch is None or self.data.extra_pairs_per_epoch >= 1,
             "data.extra_pairs_per_epoch must be at least 1 (or null: all extra pairs every epoch)"),
        ]
        check_config(checks, self.data)


# What `sensorium tune translation` varies (narrow it with --space FILE). The objective is the masked
# token accuracy on the validation split at the epoch the run keeps (not the loss: label smoothing,
# which is searched, changes the loss's scale).
SEARCH_SPACE = SearchSpace(
    task="translation", objective="val_masked_token_accuracy", direction="max",
    params=(
        Float("train.learning_rate", 2e-4, 2e-3, log=True, help="peak learning rate"),
        Choice("train.batch_size", [32, 64, 128], help="batch size"),
        Choice("model.embed_dim", [128, 256, 512], help="Transformer width (a multiple of num_heads)"),
        Int("model.encoder_layers", 1, 4, help="encoder layers"),
        Int("model.decoder_layers", 1, 4, help="decoder layers"),
        Float("model.dropout", 0.0, 0.3, step=0.05, help="dropout"),
        Float("train.label_smoothing", 0.0, 0.2, step=0.05, help="label smoothing of the token loss"),
    ),
)
