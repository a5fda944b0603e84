"""Convolutional (denoising) autoencoder that takes raw uint8 pixels.

``pixels (B, h, w, 3) uint8 -> reconstruction (B, H, W, C) float32 in [0, 1]``, where (H, W) and C
are the model's image size and channels: the reconstruction of the *preprocessed* input
(grayscale / resized / scaled inside the model). With ``noise_sigma > 0`` a ``PixelNoise`` layer
corrupts the input in training only (a denoising autoencoder); at inference the model maps any
(noisy) image to a clean reconstruction. The per-image reconstruction error (mean squared error
in [0, 1] pixel units) is the anomaly score: :func:`reconstruction_error_model` adds it as a second
output, and the ``TaskMetadata`` layer carries the calibrated threshold (``anomaly_threshold``).

Example::

    model = build_autoencoder(AutoencoderSpec(noise_sigma=0.3))   # MNIST: 28x28 grayscale, latent 32
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from sensorium.models.blocks.generative import ConvDecoder, ConvEncoder, PerImageMSE, PixelNoise
from sensorium.models.blocks.image_preprocessing import ImagePreprocessing
from sensorium.models.blocks.metadata import TaskMetadata

TASK = "autoencoder"


@dataclass
class AutoencoderSpec:
    """Architecture settings of an autoencoder (no training settings)."""

    image_size: tuple[int, int] = (28, 28)
    channels: int = 1  # 1 = grayscale model, 3 = RGB
    latent_dim: int = 32  # size of the bottleneck
    widths: tuple[int, ...] = (32, 64)  # encoder filters per stride-2 stage; the decoder mirrors them
    noise_sigma: float = 0.0  # > 0: denoising autoencoder (Gaussian noise, [0, 1] pixel units, training only)


def generative_info(image_size, channels: int, latent_dim: int, **extra: Any) -> dict[str, Any]:
    """The TaskMetadata `info` every generative model carries (JSON-able)."""
    return {"image_size": [int(image_size[0]), int(image_size[1])], "channels": int(channels),
            "latent_dim": int(latent_dim), "input": "uint8 RGB pixels (B, h, w, 3), any size",
            "output": f"float32 images (B, {int(image_size[0])}, {int(image_size[1])}, {int(channels)}) in [0, 1]",
            **extra}


def build_autoencoder(spec: AutoencoderSpec, *, anomaly_threshold: float | None = None, seed: int | None = None,
                      name: str = "autoencoder") -> keras.Model:
    """Build ``pixels (B, h, w, 3) uint8 -> reconstruction (B, H, W, C) float32``.

    Graph: ImagePreprocessing "preprocessing" -> PixelNoise "noise" (training only) -> ConvEncoder
    "encoder" -> ConvDecoder "decoder" -> TaskMetadata "reconstruction".
    """
    if not 0.0 <= spec.noise_sigma <= 1.0:
        raise ValueError(f"noise_sigma must be in [0, 1], got {spec.noise_sigma}")
    size = (int(spec.image_size[0]), int(spec.image_size[1]))
    pixels = keras.Input((None, None, 3), dtype="uint8", name="pixels")  # (B, h, w, 3) uint8
    x = ImagePreprocessing(size, channels=spec.channels, name="preprocessing")(pixels)  # (B, H, W, C) in [0, 1]
    x = PixelNoise(spec.noise_sigma, seed=seed, name="noise")(x)  # (B, H, W, C), noisy in training only
    z = ConvEncoder(spec.latent_dim, spec.widths, name="encoder")(x)  # (B, latent_dim)
    y = ConvDecoder(size, spec.channels, tuple(reversed(spec.widths)), name="decoder")(z)  # (B, H, W, C)
    info = generative_info(size, spec.channels, spec.latent_dim, widths=[int(w) for w in spec.widths],
                           noise_sigma=float(spec.noise_sigma), anomaly_threshold=anomaly_threshold,
                           anomaly_score="per-image mean squared reconstruction error, [0, 1] pixel units")
    out = TaskMetadata(task=TASK, info=info, name="reconstruction")(y)
    return keras.Model(pixels, out, name=name)


def reconstruction_error_model(model: keras.Model) -> keras.Model:
    """``pixels -> {"reconstruction": (B, H, W, C), "error": (B,)}`` sharing `model`'s layers; the
    error is the per-image MSE between the preprocessed input and its reconstruction."""
    clean = model.get_layer("preprocessing").output  # (B, H, W, C) in [0, 1]
    error = PerImageMSE(name="error")([clean, model.output])  # (B,)
    return keras.Model(model.input, {"reconstruction": model.output, "error": error}, name=f"{model.name}_errors")


def reconstruction_errors(model: keras.Model, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Per-image reconstruction MSE of uint8 (N, h, w, 3) pixels -> (N,) float32."""
    scorer = reconstruction_error_model(model)
    out = [np.asarray(scorer(pixels[i:i + batch_size], training=False)["error"])
           for i in range(0, len(pixels), batch_size)]
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def preprocess(model: keras.Model, pixels) -> Any:
    """The model's own preprocessing of uint8 (B, h, w, 3) pixels -> (B, H, W, C) float32 in [0, 1]."""
    return model.get_layer("preprocessing")(pixels)


def decoder_model(model: keras.Model) -> keras.Model:
    """The trained decoder alone: ``latent (B, latent_dim) float32 -> image (B, H, W, C) float32``."""
    decoder = model.get_layer("decoder")
    latent = keras.Input((decoder.input.shape[-1],), dtype="float32", name="latent")
    return keras.Model(latent, decoder(latent), name=f"{model.name}_decoder")
