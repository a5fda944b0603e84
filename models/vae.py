"""Convolutional variational autoencoder (VAE) that takes raw uint8 pixels.

``VAE`` is a subclassed ``keras.Model`` made of three parts, each usable alone:

- ``preprocessing``: ``ImagePreprocessing`` (uint8 RGB pixels of any size -> (B, H, W, C) in [0, 1]);
- ``encoder``: a functional model ``image (B, H, W, C) -> [z_mean, z_log_var]``, each (B, latent_dim);
- ``decoder``: a functional model ``latent (B, latent_dim) -> image (B, H, W, C)`` in [0, 1], ending in
  the ``TaskMetadata`` layer, so the generator exported alone is self-describing.

Loss per image: Bernoulli negative log-likelihood of the pixels (binary cross-entropy summed over
H x W x C, in nats: it gives sharper MNIST samples than a Gaussian/MSE likelihood at the same beta)
plus ``beta`` times KL(q(z|x) || N(0, I)) (closed form, summed over latent dims). With beta = 1 the
loss is the negative ELBO. ``train_step``/``test_step`` report ``loss``, ``reconstruction_loss`` and
``kl_loss`` (means per image). ``call(pixels)`` reconstructs deterministically from z_mean (with
``training=True`` it samples z).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from sensorium.models.autoencoder import generative_info
from sensorium.models.blocks.generative import ConvDecoder, ConvEncoder, Sampling
from sensorium.models.blocks.image_preprocessing import ImagePreprocessing
from sensorium.models.blocks.metadata import TaskMetadata

TASK = "vae"


@dataclass
class VAESpec:
    """Architecture and loss settings of a VAE."""

    image_size: tuple[int, int] = (28, 28)
    channels: int = 1
    latent_dim: int = 8  # small: prior samples of MNIST stay recognisable (16 reconstructs better, samples worse)
    widths: tuple[int, ...] = (32, 64)  # encoder filters per stride-2 stage; the decoder mirrors them
    beta: float = 1.0  # weight of the KL term (1: the ELBO; > 1: beta-VAE)


def kl_divergence(z_mean, z_log_var):
    """KL(N(z_mean, exp(z_log_var)) || N(0, I)) per row: (B, L), (B, L) -> (B,), always >= 0."""
    ops = keras.ops
    terms = 0.5 * (ops.square(z_mean) + ops.exp(z_log_var) - 1.0 - z_log_var)  # (B, L), each >= 0
    return ops.sum(ops.maximum(terms, 0.0), axis=-1)  # (B,)


def bernoulli_nll(target, probabilities):
    """Binary cross-entropy summed over the pixels: (B, H, W, C), (B, H, W, C) -> (B,) nats."""
    ops = keras.ops
    eps = 1e-6
    p = ops.clip(ops.cast(probabilities, "float32"), eps, 1.0 - eps)
    t = ops.cast(target, "float32")
    return -ops.sum(t * ops.log(p) + (1.0 - t) * ops.log(1.0 - p), axis=(1, 2, 3))  # (B,)


def _replicas() -> int:
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


@keras.saving.register_keras_serializable(package="sensorium")
class VAE(keras.Model):
    """Variational autoencoder; build it with :func:`build_vae`."""

    def __init__(self, preprocessing: keras.layers.Layer, encoder: keras.Model, decoder: keras.Model,
                 beta: float = 1.0, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.preprocessing = preprocessing
        self.encoder = encoder
        self.decoder = decoder
        self.beta = float(beta)
        self.seed = None if seed is None else int(seed)
        self.sampling = Sampling(seed=self.seed, name="sampling")
        self.latent_dim = int(decoder.inputs[0].shape[-1])
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")

    # === Forward ===
    def call(self, pixels, training: bool | None = None):
        # pixels: (B, h, w, 3) uint8
        x = self.preprocessing(pixels)  # (B, H, W, C) in [0, 1]
        z_mean, z_log_var = self.encoder(x, training=training)  # (B, L) each
        z = self.sampling([z_mean, z_log_var]) if training else z_mean  # (B, L)
        return self.decoder(z, training=training)  # (B, H, W, C) in [0, 1]

    def encode(self, pixels, training: bool = False):
        """uint8 pixels -> (z_mean, z_log_var), each (B, latent_dim)."""
        return self.encoder(self.preprocessing(pixels), training=training)

    def generate(self, z, training: bool = False):
        """Latent vectors (B, latent_dim) -> images (B, H, W, C) in [0, 1]."""
        return self.decoder(z, training=training)

    def loss_terms(self, pixels, training: bool = False):
        """Per-image (reconstruction NLL, KL), each (B,), with one sampled z per image."""
        x = self.preprocessing(pixels)  # (B, H, W, C)
        z_mean, z_log_var = self.encoder(x, training=training)  # (B, L) each
        z = self.sampling([z_mean, z_log_var])  # (B, L)
        reconstruction = self.decoder(z, training=training)  # (B, H, W, C)
        return bernoulli_nll(x, reconstruction), kl_divergence(z_mean, z_log_var)

    # === Training ===
    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def _update(self, rec, kl, loss) -> dict[str, Any]:
        self.loss_tracker.update_state(loss)
        self.reconstruction_tracker.update_state(rec)
        self.kl_tracker.update_state(kl)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        import tensorflow as tf

        pixels = data[0] if isinstance(data, (tuple, list)) else data
        with tf.GradientTape() as tape:
            rec, kl = self.loss_terms(pixels, training=True)
            rec, kl = keras.ops.mean(rec), keras.ops.mean(kl)
            loss = rec + self.beta * kl
            scaled = self.optimizer.scale_loss(loss / _replicas())
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply(grads, variables)
        return self._update(rec, kl, loss)

    def test_step(self, data):
        pixels = data[0] if isinstance(data, (tuple, list)) else data
        rec, kl = self.loss_terms(pixels, training=False)
        rec, kl = keras.ops.mean(rec), keras.ops.mean(kl)
        return self._update(rec, kl, rec + self.beta * kl)

    # === Config ===
    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "preprocessing": keras.saving.serialize_keras_object(self.preprocessing),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "beta": self.beta,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> VAE:
        config = dict(config)
        for key in ("preprocessing", "encoder", "decoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        model = cls(**config)
        model.build_for(model.preprocessing.image_size)
        return model

    def build(self, input_shape=None) -> None:
        """The encoder and decoder are built when made (functional models): nothing left to create."""
        self.built = True

    def build_for(self, image_size) -> None:
        """Build every part: one call on a dummy batch of uint8 pixels of `image_size`, and the sampling."""
        self(np.zeros((1, int(image_size[0]), int(image_size[1]), 3), np.uint8), training=False)
        self.sampling([np.zeros((1, self.latent_dim), np.float32)] * 2)


def build_vae(spec: VAESpec, *, seed: int | None = None, latent_prior: dict[str, Any] | None = None,
              name: str = "vae") -> VAE:
    """Build (and call once, so its variables exist) a VAE for `spec`; `latent_prior` (a fitted mixture,
    see pipelines/generative/images.LatentPrior) goes into the decoder's metadata."""
    if spec.latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, got {spec.latent_dim}")
    if spec.beta < 0:
        raise ValueError(f"beta must be >= 0, got {spec.beta}")
    size = (int(spec.image_size[0]), int(spec.image_size[1]))
    preprocessing = ImagePreprocessing(size, channels=spec.channels, name="preprocessing")

    image = keras.Input((*size, spec.channels), dtype="float32", name="image")  # (B, H, W, C) in [0, 1]
    z_mean, z_log_var = ConvEncoder(spec.latent_dim, spec.widths, variational=True,
                                    name="conv_encoder")(image)  # (B, L) each
    encoder = keras.Model(image, [z_mean, z_log_var], name="encoder")

    latent = keras.Input((spec.latent_dim,), dtype="float32", name="latent")  # (B, L)
    x = ConvDecoder(size, spec.channels, tuple(reversed(spec.widths)), name="conv_decoder")(latent)  # (B, H, W, C)
    info = generative_info(size, spec.channels, spec.latent_dim, widths=[int(w) for w in spec.widths],
                           beta=float(spec.beta), likelihood="bernoulli",
                           **({"latent_prior": latent_prior} if latent_prior else {}))
    out = TaskMetadata(task=TASK, info=info, name="image_out")(x)
    decoder = keras.Model(latent, out, name="decoder")

    model = VAE(preprocessing, encoder, decoder, beta=spec.beta, seed=seed, name=name)
    model.build_for(size)
    return model
