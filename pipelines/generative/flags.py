"""Command-line options of `sensorium train|tune` for the generative tasks' (autoencoder, vae, gan) config.

Kept apart from the config dataclasses so `sensorium --help` builds every option without importing
TensorFlow.
"""
from __future__ import annotations

from sensorium.pipelines.common.flags import GENERATIVE_FLAGS, Flag

# `sensorium train|tune autoencoder` options (each sets one config key; see pipelines/common/flags.py)
AUTOENCODER_FLAGS: tuple[Flag, ...] = GENERATIVE_FLAGS + (
    Flag("--noise-sigma", "model.noise_sigma", float, "denoising: Gaussian noise sigma on [0, 1] pixels in "
         "training (0: plain autoencoder)", metavar="SIGMA"),
)

# `sensorium train|tune vae` options (each sets one config key; see pipelines/common/flags.py)
VAE_FLAGS: tuple[Flag, ...] = GENERATIVE_FLAGS + (
    Flag("--beta", "model.beta", float, "weight of the KL term (1: the ELBO)"),
    Flag("--latent-prior", "train.latent_prior", str, "where generated latents come from: mixture (a Gaussian "
         "mixture fitted to the training codes, default) or standard (N(0, I))", choices=("mixture", "standard")),
)

# `sensorium train|tune gan` options (each sets one config key; see pipelines/common/flags.py)
GAN_FLAGS: tuple[Flag, ...] = GENERATIVE_FLAGS + (
    Flag("--discriminator-learning-rate", "train.discriminator_learning_rate", float,
         "the discriminator's learning rate (default: --learning-rate)"),
)
