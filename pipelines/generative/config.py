"""Configuration of the generative tasks `autoencoder`, `vae` and `gan` (written to RUN_DIR/config.json,
valid --config input)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sensorium.models.autoencoder import AutoencoderSpec
from sensorium.models.gan import GANSpec
from sensorium.models.vae import VAESpec
from sensorium.pipelines.common.training import TrainSettings
from sensorium.pipelines.image.config import DataConfig as ImageDataConfig


@dataclass
class DataConfig(ImageDataConfig):
    """Any image data spec (labels are not used for training), optionally only some of its classes."""

    classes: list[str] | None = None  # keep only these class names (e.g. "0".."8" for anomaly detection)


@dataclass
class AutoencoderTrainConfig(TrainSettings):
    """Optimisation settings of an autoencoder, and its anomaly-threshold calibration."""

    learning_rate: float = 1e-3
    epochs: int = 30
    anomaly_quantile: float = 0.99  # threshold = this quantile of the validation images' reconstruction MSE


@dataclass
class VAETrainConfig(TrainSettings):
    """Optimisation settings of a VAE, and the latent prior its samples are drawn from."""

    learning_rate: float = 1e-3
    epochs: int = 30
    latent_prior: Literal["mixture", "standard"] = "mixture"  # mixture: a Gaussian mixture fitted to the training
    #                                                           codes after training; standard: N(0, I)
    prior_components: int = 10  # components of that mixture


@dataclass
class GANTrainConfig(TrainSettings):
    """Optimisation settings of a GAN: `learning_rate` is the generator's, `discriminator_learning_rate`
    the discriminator's (None: the same). GAN losses say little about sample quality, so there is no
    early stopping by default and the last epoch is kept."""

    learning_rate: float = 2e-4
    discriminator_learning_rate: float | None = None
    beta_1: float = 0.5  # Adam's first-moment decay (DCGAN's 0.5)
    epochs: int = 60  # on MNIST, classifier confidence of samples 0.89 at 30 epochs, 0.90 at 40, 0.91 at 60
    schedule: Literal["cosine", "constant"] = "constant"
    warmup_epochs: int = 0
    early_stopping_patience: int = 0
    monitor: str = "g_loss"


@dataclass
class _GenerativeConfig:
    """What every generative config has besides `model` and `train` (see the subclasses)."""

    seed: int = 42
    evaluate_on: str | None = "test"  # split evaluated at the end of training (None: skip); a slice is allowed
    samples: int = 1000  # generated images scored by the classifier in an evaluation (vae, gan)
    sample_grid: int = 64  # images in each RUN_DIR/samples/epoch-NNN.png grid (autoencoder: pairs)
    classifier: str | None = None  # image model scoring generated samples (None: the bundled MNIST classifier;
    #                                "off": no classifier metrics)

    def _checks(self, model: Any, train: TrainSettings) -> list[tuple[bool, str]]:
        size = model.image_size
        return train.checks() + [
            (0 < self.data.validation_fraction < 1, "data.validation_fraction must be between 0 and 1"),
            (model.channels in (1, 3), "model.channels must be 1 or 3"),
            (size is not None and len(size) == 2 and min(size) >= 4, "model.image_size must be two sizes >= 4"),
            (bool(model.widths) and min(model.widths) >= 1, "model.widths must be positive"),
            (model.latent_dim >= 1, "model.latent_dim must be at least 1"),
            (self.samples >= 2, "samples must be at least 2"),
            (self.samples <= 100_000, "samples must be at most 100000"),
            (1 <= self.sample_grid <= 1024, "sample_grid must be between 1 and 1024"),
            (self.data.classes is None or len(self.data.classes) >= 1, "data.classes must name at least one class"),
        ]

    def _validate(self, extra: list[tuple[bool, str]]) -> None:
        from sensorium.pipelines.common.dataspec import parse_spec
        from sensorium.pipelines.common.training import check_config
        from sensorium.pipelines.datasets.registry import get_builtin

        check_config(self._checks(self.model, self.train) + extra, self.data)  # type: ignore[attr-defined]
        if self.data.spec.startswith("builtin:"):  # type: ignore[attr-defined]
            get_builtin(parse_spec(self.data.spec).name, "image")  # type: ignore[attr-defined]


@dataclass
class AutoencoderConfig(_GenerativeConfig):
    """A convolutional (denoising) autoencoder run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: AutoencoderSpec = field(default_factory=AutoencoderSpec)
    train: AutoencoderTrainConfig = field(default_factory=AutoencoderTrainConfig)

    def validate(self) -> None:
        """Reject values no run can use (UsageError) and unusable data specs (DataError)."""
        self._validate([
            (0.0 <= self.model.noise_sigma <= 1.0, "model.noise_sigma must be in [0, 1] (pixel units)"),
            (0.5 <= self.train.anomaly_quantile < 1.0, "train.anomaly_quantile must be in [0.5, 1)"),
        ])


@dataclass
class VAEConfig(_GenerativeConfig):
    """A variational autoencoder run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: VAESpec = field(default_factory=VAESpec)
    train: VAETrainConfig = field(default_factory=VAETrainConfig)

    def validate(self) -> None:
        self._validate([(self.model.beta >= 0, "model.beta must be >= 0"),
                        (1 <= self.train.prior_components <= 100, "train.prior_components must be between 1 and 100")])


@dataclass
class GANConfig(_GenerativeConfig):
    """A DCGAN run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: GANSpec = field(default_factory=GANSpec)
    train: GANTrainConfig = field(default_factory=GANTrainConfig)

    def validate(self) -> None:
        d_lr = self.train.discriminator_learning_rate
        self._validate([
            (d_lr is None or d_lr > 0, "train.discriminator_learning_rate must be positive"),
            (0 < self.train.beta_1 < 1, "train.beta_1 must be in (0, 1)"),
            (bool(self.model.discriminator_widths) and min(self.model.discriminator_widths) >= 1,
             "model.discriminator_widths must be positive"),
            (0 <= self.model.discriminator_dropout < 1, "model.discriminator_dropout must be in [0, 1)"),
            (0 <= self.model.label_smoothing < 0.5, "model.label_smoothing must be in [0, 0.5)"),
        ])


CONFIGS: dict[str, type] = {"autoencoder": AutoencoderConfig, "vae": VAEConfig, "gan": GANConfig}
