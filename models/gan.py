"""DCGAN-style generative adversarial network on raw uint8 pixels.

``GAN`` is a subclassed ``keras.Model`` made of:

- ``preprocessing``: ``ImagePreprocessing`` (real uint8 RGB pixels -> (B, H, W, C) in [0, 1]);
- ``generator``: a functional model ``latent (B, latent_dim) -> image (B, H, W, C)`` in [0, 1]
  (Dense -> stride-2 Conv2DTranspose + BN + ReLU stages -> sigmoid), ending in the ``TaskMetadata``
  layer, so the generator exported alone is self-describing;
- ``discriminator``: a functional model ``image (B, H, W, C) -> logit (B, 1)`` (stride-2 convolutions,
  LeakyReLU, dropout, no batch norm).

``compile(d_optimizer=..., g_optimizer=...)`` takes one optimizer per network; ``train_step`` makes
one discriminator step (real vs generated, non-saturating BCE on logits, optional one-sided label
smoothing) then one generator step, and reports ``d_loss``, ``g_loss`` and the discriminator's mean
probabilities ``real_score`` / ``fake_score``. ``call(z)`` generates images. Both optimizers' state
is saved in a ``.keras`` file and restored by ``keras.saving.load_model``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from sensorium.models.autoencoder import generative_info
from sensorium.models.blocks.generative import ConvDecoder, ConvEncoder
from sensorium.models.blocks.image_preprocessing import ImagePreprocessing
from sensorium.models.blocks.metadata import TaskMetadata

TASK = "gan"


@dataclass
class GANSpec:
    """Architecture and loss settings of a DCGAN."""

    image_size: tuple[int, int] = (28, 28)
    channels: int = 1
    latent_dim: int = 64
    widths: tuple[int, ...] = (64, 128)  # generator filters per stage in encoder order (it runs them reversed)
    discriminator_widths: tuple[int, ...] = (64, 128)  # discriminator filters per stride-2 stage
    discriminator_dropout: float = 0.3
    label_smoothing: float = 0.1  # real targets are 1 - label_smoothing for the discriminator


def _replicas() -> int:
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


@keras.saving.register_keras_serializable(package="sensorium")
class GAN(keras.Model):
    """DCGAN; build it with :func:`build_gan`."""

    def __init__(self, preprocessing: keras.layers.Layer, generator: keras.Model, discriminator: keras.Model,
                 label_smoothing: float = 0.0, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.preprocessing = preprocessing
        self.generator = generator
        self.discriminator = discriminator
        self.label_smoothing = float(label_smoothing)
        self.seed = None if seed is None else int(seed)
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.d_optimizer: keras.optimizers.Optimizer | None = None
        self.g_optimizer: keras.optimizers.Optimizer | None = None
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.real_tracker = keras.metrics.Mean(name="real_score")
        self.fake_tracker = keras.metrics.Mean(name="fake_score")

    # === Forward ===
    def call(self, z, training: bool | None = None):
        # z: (B, latent_dim)
        return self.generator(z, training=training)  # (B, H, W, C) in [0, 1]

    def generate(self, z, training: bool = False):
        """Latent vectors (B, latent_dim) -> images (B, H, W, C) in [0, 1]."""
        return self.generator(z, training=training)

    def discriminate(self, pixels, training: bool = False):
        """uint8 pixels (B, h, w, 3) -> the discriminator's logits (B, 1) (real > 0)."""
        return self.discriminator(self.preprocessing(pixels), training=training)

    # === Training ===
    def compile(self, d_optimizer: keras.optimizers.Optimizer | None = None,
                g_optimizer: keras.optimizers.Optimizer | None = None, **kwargs: Any) -> None:
        """One optimizer per network (Adam(2e-4, beta_1=0.5) each when not given); under a mixed
        float16 policy each is wrapped in a LossScaleOptimizer."""
        d_optimizer = d_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        g_optimizer = g_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            wrap = keras.optimizers.LossScaleOptimizer
            d_optimizer = d_optimizer if isinstance(d_optimizer, wrap) else wrap(d_optimizer)
            g_optimizer = g_optimizer if isinstance(g_optimizer, wrap) else wrap(g_optimizer)
        kwargs.setdefault("optimizer", None)  # no third optimizer: model.optimizer stays None
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self._gan_compile_config = {"d_optimizer": keras.optimizers.serialize(d_optimizer),
                                    "g_optimizer": keras.optimizers.serialize(g_optimizer)}

    def get_compile_config(self) -> dict[str, Any]:
        return dict(getattr(self, "_gan_compile_config", {}))

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Compile with the saved optimizers and create their variables, so a loaded checkpoint gets
        both optimizers' state back."""
        if not config:
            return
        self.compile(d_optimizer=keras.optimizers.deserialize(config["d_optimizer"]),
                     g_optimizer=keras.optimizers.deserialize(config["g_optimizer"]))
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.d_loss_tracker, self.g_loss_tracker, self.real_tracker, self.fake_tracker]

    def _latents(self, batch) -> Any:
        return keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)  # (B, L)

    def _discriminator_loss(self, real, training: bool):
        """Discriminator loss on real + generated images, and their mean real-probabilities."""
        ops = keras.ops
        batch = ops.shape(real)[0]
        fake = self.generator(self._latents(batch), training=training)  # (B, H, W, C)
        real_logits = ops.cast(self.discriminator(real, training=training), "float32")  # (B, 1)
        fake_logits = ops.cast(self.discriminator(fake, training=training), "float32")  # (B, 1)
        real_target = ops.full_like(real_logits, 1.0 - self.label_smoothing)
        d_loss = (ops.mean(keras.losses.binary_crossentropy(real_target, real_logits, from_logits=True))
                  + ops.mean(keras.losses.binary_crossentropy(ops.zeros_like(fake_logits), fake_logits,
                                                              from_logits=True)))
        return d_loss, ops.mean(ops.sigmoid(real_logits)), ops.mean(ops.sigmoid(fake_logits))

    def _generator_loss(self, batch, training: bool):
        ops = keras.ops
        fake = self.generator(self._latents(batch), training=training)  # (B, H, W, C)
        logits = ops.cast(self.discriminator(fake, training=training), "float32")  # (B, 1)
        # non-saturating generator loss: -log D(G(z))
        return ops.mean(keras.losses.binary_crossentropy(ops.ones_like(logits), logits, from_logits=True))

    def train_step(self, data):
        import tensorflow as tf

        if self.d_optimizer is None or self.g_optimizer is None:
            raise RuntimeError("compile the GAN with d_optimizer and g_optimizer before training")
        pixels = data[0] if isinstance(data, (tuple, list)) else data
        real = self.preprocessing(pixels)  # (B, H, W, C) in [0, 1]
        batch = keras.ops.shape(real)[0]
        replicas = _replicas()

        d_vars = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            d_loss, real_score, fake_score = self._discriminator_loss(real, training=True)
            scaled = self.d_optimizer.scale_loss(d_loss / replicas)
        self.d_optimizer.apply(tape.gradient(scaled, d_vars), d_vars)

        g_vars = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            g_loss = self._generator_loss(batch, training=True)
            scaled = self.g_optimizer.scale_loss(g_loss / replicas)
        self.g_optimizer.apply(tape.gradient(scaled, g_vars), g_vars)
        return self._update(d_loss, g_loss, real_score, fake_score)

    def test_step(self, data):
        pixels = data[0] if isinstance(data, (tuple, list)) else data
        real = self.preprocessing(pixels)
        d_loss, real_score, fake_score = self._discriminator_loss(real, training=False)
        g_loss = self._generator_loss(keras.ops.shape(real)[0], training=False)
        return self._update(d_loss, g_loss, real_score, fake_score)

    def _update(self, d_loss, g_loss, real_score, fake_score) -> dict[str, Any]:
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.real_tracker.update_state(real_score)
        self.fake_tracker.update_state(fake_score)
        return {m.name: m.result() for m in self.metrics}

    # === Config ===
    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "preprocessing": keras.saving.serialize_keras_object(self.preprocessing),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "label_smoothing": self.label_smoothing,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GAN:
        config = dict(config)
        for key in ("preprocessing", "generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        model = cls(**config)
        model.build_for()
        return model

    def build(self, input_shape=None) -> None:
        """The networks are built when made (functional models): nothing left to create."""
        self.built = True

    def build_for(self) -> None:
        """Build every part (Keras builds an unbuilt model by calling it on a data batch, which `call`,
        taking latent vectors, does not accept): one call on a dummy latent batch, and the
        preprocessing on dummy pixels."""
        size = self.preprocessing.image_size
        self.preprocessing(np.zeros((1, size[0], size[1], 3), np.uint8))
        self(np.zeros((1, self.latent_dim), np.float32), training=False)


def build_gan(spec: GANSpec, *, seed: int | None = None, name: str = "gan") -> GAN:
    """Build (and call once, so its variables exist) a DCGAN for `spec`."""
    if spec.latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, got {spec.latent_dim}")
    if not 0.0 <= spec.label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {spec.label_smoothing}")
    size = (int(spec.image_size[0]), int(spec.image_size[1]))
    preprocessing = ImagePreprocessing(size, channels=spec.channels, name="preprocessing")

    latent = keras.Input((spec.latent_dim,), dtype="float32", name="latent")  # (B, L)
    x = ConvDecoder(size, spec.channels, tuple(reversed(spec.widths)), kernel_size=4,
                    name="conv_generator")(latent)  # (B, H, W, C) in [0, 1]
    info = generative_info(size, spec.channels, spec.latent_dim, widths=[int(w) for w in spec.widths],
                           latent_distribution="standard normal")
    out = TaskMetadata(task=TASK, info=info, name="image_out")(x)
    generator = keras.Model(latent, out, name="generator")

    image = keras.Input((*size, spec.channels), dtype="float32", name="image")  # (B, H, W, C) in [0, 1]
    logit = ConvEncoder(1, spec.discriminator_widths, kernel_size=5, activation="leaky_relu", use_bn=False,
                        dropout=spec.discriminator_dropout, name="conv_discriminator")(image)  # (B, 1)
    discriminator = keras.Model(image, logit, name="discriminator")

    model = GAN(preprocessing, generator, discriminator, label_smoothing=spec.label_smoothing, seed=seed, name=name)
    model.build_for()
    return model
