"""Configuration of the speech-recognition task (written to RUN_DIR/config.json, valid --config input)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sensorium.models.speech import SpeechRecognizerSpec
from sensorium.pipelines.common.training import TrainSettings
from sensorium.pipelines.speech.augment import SpeechAugmentConfig
from sensorium.pipelines.tuning.space import Choice, Float, Int, SearchSpace


@dataclass
class SpeechDataConfig:
    """Where the utterances come from and how they are read."""

    spec: str = "builtin:speech"
    validation_spec: str | None = None  # default: the source's validation split
    data_dir: str | None = None  # TFDS data_dir
    download: bool = False  # let TFDS download (needs internet)
    audio_column: str | None = None  # manifest columns (default: path/audio/file/filename/wav)
    text_column: str | None = None  # (default: transcript/text/sentence/label)
    max_seconds: float = 20.0  # longer training utterances are skipped (and listed in splits/skipped.tsv)
    lead_silence: float | None = None  # cut every clip's leading quiet to this many seconds (None: keep it);
    # the model records it and its recogniser cuts clips the same way (runtime.speech, "model")


@dataclass
class SpeechTrainConfig(TrainSettings):
    """Optimisation settings (the shared ones, with speech defaults, plus gradient clipping)."""

    batch_size: int = 32
    learning_rate: float = 1e-3
    clipnorm: float = 5.0  # gradient clipping (LSTMs under CTC)
    threads: str = "split"  # the BiLSTM's two directions side by side (strategy.set_threads)


@dataclass
class SpeechConfig:
    """Everything a speech run needs; `seed` fixes splits, initialisation and shuffling."""

    data: SpeechDataConfig = field(default_factory=SpeechDataConfig)
    model: SpeechRecognizerSpec = field(default_factory=SpeechRecognizerSpec)
    train: SpeechTrainConfig = field(default_factory=SpeechTrainConfig)
    augment: SpeechAugmentConfig = field(default_factory=SpeechAugmentConfig)
    seed: int = 42
    evaluate_on: str | None = "test"  # split evaluated at the end of training (None: skip)
    beam: int = 1  # decoding beam of the final evaluation (1: greedy)

    @staticmethod
    def saved_defaults(data: dict[str, Any]) -> dict[str, Any]:
        """A run's config.json with the defaults of the version that wrote it: a run from before 0.8 has
        no `model.normalization`; its model normalises with training-set statistics and it trained with
        no warping or augmentation, so it resumes, evaluates and exports that way, not with today's
        defaults (which would build a different model around its checkpoint)."""
        model = data.get("model")
        if isinstance(model, dict) and "normalization" not in model:
            data = {**data, "model": {**model, "normalization": "global", "freq_warp": model.get("freq_warp", 0.0)}}
            if "augment" not in data:
                data["augment"] = {"levers": []}
        return data

    def validate(self) -> None:
        """Reject values no run can use (UsageError) and unusable data specs (DataError)."""
        from sensorium.pipelines.common.training import check_config

        checks = self.train.checks() + [
            (self.data.max_seconds > 0, "data.max_seconds must be positive"),
            (self.data.lead_silence is None or 0.0 <= self.data.lead_silence <= 10.0,
             "data.lead_silence must be seconds between 0 and 10 (or null)"),
            (self.model.sample_rate == 16000, "model.sample_rate must be 16000 (audio is read at 16 kHz)"),
            (self.model.rnn_layers >= 1 and self.model.rnn_units >= 1, "model.rnn_layers and rnn_units must be >= 1"),
            (bool(self.model.conv_channels), "model.conv_channels must name at least one convolution"),
            (0 <= self.model.dropout < 1, "model.dropout must be in [0, 1)"),
            (self.beam >= 1, "beam must be at least 1"),
            (self.model.normalization in ("utterance", "global"), "model.normalization must be utterance or global"),
            (self.model.lstm in ("hoisted", "keras"), "model.lstm must be hoisted or keras"),
            (0 <= self.model.freq_warp < 0.5, "model.freq_warp must be in [0, 0.5)"),
        ] + self.augment.checks()
        check_config(checks, self.data)


# What `sensorium tune speech` varies (narrow it with --space FILE). The objective is the CTC loss on the
# validation split at the epoch the run keeps.
SEARCH_SPACE = SearchSpace(
    task="speech", objective="val_loss", direction="min",
    params=(
        Float("train.learning_rate", 2e-4, 3e-3, log=True, help="peak learning rate"),
        Choice("train.batch_size", [16, 32, 64], help="batch size"),
        Choice("model.rnn_units", [64, 128, 192, 256], help="LSTM units per direction (width)"),
        Int("model.rnn_layers", 1, 3, help="LSTM layers (depth)"),
        Float("model.dropout", 0.0, 0.4, step=0.1, help="dropout after each layer"),
    ),
)
