"""A trained generative model behind one interface, whatever its task: load it from a run directory
or `.keras` file, generate from latent vectors, reconstruct images, score reconstruction errors.

Used by `evaluate` here and by the inference verbs (generate, denoise, anomaly) and export.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.artifacts import Artifact, inspect_artifact, load_keras
from sensorium.runtime.errors import ModelError

GENERATIVE_TASKS = ("autoencoder", "vae", "gan")
GENERATORS = ("vae", "gan")  # tasks that generate from latent vectors
RECONSTRUCTORS = ("autoencoder", "vae")  # tasks that reconstruct (denoise, score anomalies)


def register_models() -> None:
    """Import the model modules so their subclassed models deserialise."""
    import sensorium.models.autoencoder  # noqa: F401
    import sensorium.models.blocks  # noqa: F401
    import sensorium.models.gan  # noqa: F401
    import sensorium.models.vae  # noqa: F401


@dataclass
class GenerativeModel:
    """A loaded autoencoder, VAE or GAN. Images are model-space float (N, H, W, C) in [0, 1]; pixels
    are uint8 RGB (N, h, w, 3) of any size."""

    task: str
    model: Any  # keras.Model: functional autoencoder, VAE or GAN
    info: dict[str, Any]
    source: str
    run_path: Path | None = None

    @property
    def image_size(self) -> tuple[int, int]:
        size = self.info["image_size"]
        return int(size[0]), int(size[1])

    @property
    def channels(self) -> int:
        return int(self.info["channels"])

    @property
    def latent_dim(self) -> int:
        return int(self.info["latent_dim"])

    @property
    def anomaly_threshold(self) -> float | None:
        value = self.info.get("anomaly_threshold")
        return None if value is None else float(value)

    def generator(self) -> Any:
        """The standalone generator / decoder: keras.Model `latent (B, latent_dim) -> image (B, H, W, C)`."""
        if self.task == "vae":
            return self.model.decoder
        if self.task == "gan":
            return self.model.generator
        from sensorium.models.autoencoder import decoder_model

        return decoder_model(self.model)

    def latents(self, count: int, seed: int = 0) -> np.ndarray:
        """`count` latent vectors (count, latent_dim) from the model's prior (a VAE's fitted mixture, else
        N(0, I)), the same for the same seed."""
        from sensorium.pipelines.generative.images import LatentPrior

        return LatentPrior.from_info(self.info).sample(count, seed)

    def generate(self, z: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Latent vectors (N, latent_dim) -> images (N, H, W, C) in [0, 1] (VAE, GAN)."""
        if self.task not in GENERATORS:
            raise ModelError(f"{self.source} is an {self.task} model: it does not generate images (train a vae or gan)")
        gen = self.generator()
        z = np.asarray(z, np.float32)
        out = [np.asarray(gen(z[i:i + batch_size], training=False)) for i in range(0, len(z), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, *self.image_size, self.channels), np.float32)

    def preprocess(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """uint8 pixels (N, h, w, 3) -> the model's view of them: (N, H, W, C) in [0, 1]."""
        layer = self.model.preprocessing if self.task in GENERATORS else self.model.get_layer("preprocessing")
        return self._batched(layer, pixels, batch_size)

    def reconstruct(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """uint8 pixels (N, h, w, 3) -> reconstructions (N, H, W, C) in [0, 1] (autoencoder: denoised;
        VAE: decoded from z_mean)."""
        if self.task not in RECONSTRUCTORS:
            raise ModelError(f"{self.source} is a {self.task} model: it does not reconstruct images "
                             "(train an autoencoder or vae)")
        return self._batched(lambda x: self.model(x, training=False), pixels, batch_size)

    def errors(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Per-image reconstruction MSE (N,) in [0, 1] pixel units: the anomaly score."""
        clean = self.preprocess(pixels, batch_size)
        return np.mean(np.square(clean - self.reconstruct(pixels, batch_size)), axis=(1, 2, 3)).astype(np.float32)

    @staticmethod
    def _batched(fn: Any, pixels: np.ndarray, batch_size: int) -> np.ndarray:
        out = [np.asarray(fn(pixels[i:i + batch_size])) for i in range(0, len(pixels), batch_size)]
        if not out:
            raise ValueError("no images")
        return np.concatenate(out).astype(np.float32)


def load_generative(model: str | Path | Artifact, *, tasks: tuple[str, ...] = GENERATIVE_TASKS,
                    require_complete: bool = True) -> GenerativeModel:
    """Load a generative run directory or `.keras` file; a ModelError (one line) for anything else,
    including a model of another task."""
    from sensorium.models.blocks.metadata import read_task_metadata

    artifact = model if isinstance(model, Artifact) else inspect_artifact(model, require_complete=require_complete)
    if artifact.task not in tasks:
        what = f"a '{artifact.task}' model" if artifact.task else "not a Sensorium model"
        raise ModelError(f"{artifact.path} is {what}, not {' / '.join(tasks)}")
    if artifact.kind not in ("run", "keras"):
        raise ModelError(f"{artifact.path}: {artifact.task} models are used from a run directory or .keras file")
    register_models()
    loaded = load_keras(artifact.keras_path)
    meta = read_task_metadata(loaded)
    if meta is None or meta["task"] != artifact.task:
        raise ModelError(f"{artifact.path}: not a Sensorium {artifact.task} model")
    return GenerativeModel(artifact.task, loaded, dict(meta.get("info") or {}), str(artifact.path),
                           artifact.run.path if artifact.run is not None else None)
