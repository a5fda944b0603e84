"""Image helpers of the generative tasks (numpy and Pillow only): model-space images <-> uint8 pixels,
Gaussian corruption, fixed latent vectors, and PNG sample grids written atomically.

"Model-space" images are float (N, H, W, C) in [0, 1] at the model's size and channels, what the
models' preprocessing produces and what their decoders output.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from sensorium.runtime.atomic import atomic_write_bytes


def to_pixels(images: np.ndarray) -> np.ndarray:
    """Model-space images (N, H, W, C) in [0, 1] -> uint8 RGB pixels (N, H, W, 3) (gray repeated), the
    input every Sensorium image model takes."""
    x = np.asarray(images, np.float32)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"expected images (N, H, W, 1|3), got shape {x.shape}")
    pixels = np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels


def add_noise(images: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Gaussian noise of `sigma` ([0, 1] pixel units) added to model-space images, clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    x = np.asarray(images, np.float32)
    return np.clip(x + rng.normal(0.0, sigma, x.shape).astype(np.float32), 0.0, 1.0)


def fixed_latents(count: int, latent_dim: int, seed: int = 0) -> np.ndarray:
    """`count` standard-normal latent vectors (count, latent_dim) float32, the same for the same seed."""
    return np.random.default_rng(seed).standard_normal((count, latent_dim)).astype(np.float32)


class LatentPrior:
    """Where generated latent vectors come from: N(0, I), or a Gaussian mixture fitted to the training
    images' codes (ex-post density estimation, Ghosh et al. 2020): a VAE's aggregate posterior is not
    N(0, I); sampling where the codes of real images lie gives sharper samples and each class its share.

    The mixture travels in the model's metadata (`info["latent_prior"]`: weights (K,), means (K, L),
    cholesky factors of the covariances (K, L, L)), so an exported decoder can be sampled the same way.
    """

    def __init__(self, latent_dim: int, weights: np.ndarray | None = None, means: np.ndarray | None = None,
                 cholesky: np.ndarray | None = None) -> None:
        self.latent_dim = int(latent_dim)
        self.weights, self.means, self.cholesky = weights, means, cholesky

    @property
    def kind(self) -> str:
        return "standard" if self.weights is None else "gaussian_mixture"

    def sample(self, count: int, seed: int = 0) -> np.ndarray:
        """`count` latent vectors (count, latent_dim) float32, the same for the same seed."""
        if self.weights is None:
            return fixed_latents(count, self.latent_dim, seed)
        rng = np.random.default_rng(seed)
        eps = rng.standard_normal((count, self.latent_dim))  # (N, L)
        component = rng.choice(len(self.weights), size=count, p=self.weights)  # (N,)
        z = self.means[component] + np.einsum("nij,nj->ni", self.cholesky[component], eps)  # (N, L)
        return z.astype(np.float32)

    def to_info(self) -> dict | None:
        if self.weights is None:
            return None
        return {"kind": self.kind, "weights": self.weights.tolist(), "means": self.means.tolist(),
                "cholesky": self.cholesky.tolist()}

    @classmethod
    def from_info(cls, info: dict) -> LatentPrior:
        """The prior a model's metadata `info` names (N(0, I) when it names none)."""
        latent_dim = int(info["latent_dim"])
        prior = info.get("latent_prior")
        if not prior:
            return cls(latent_dim)
        weights = np.asarray(prior["weights"], np.float64)
        return cls(latent_dim, weights / weights.sum(), np.asarray(prior["means"], np.float64),
                   np.asarray(prior["cholesky"], np.float64))

    @classmethod
    def fit(cls, codes: np.ndarray, components: int, seed: int = 0) -> LatentPrior:
        """A full-covariance Gaussian mixture of `components` fitted to `codes` (N, L) (scikit-learn)."""
        from sklearn.mixture import GaussianMixture

        codes = np.asarray(codes, np.float64)
        k = max(1, min(int(components), len(codes) // 2))
        gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, random_state=seed, max_iter=300)
        gmm.fit(codes)
        return cls(codes.shape[1], gmm.weights_, gmm.means_, np.linalg.cholesky(gmm.covariances_))


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image PSNR in dB of images in [0, 1] (peak 1.0): (N, H, W, C) x 2 -> (N,), capped at 100 dB."""
    mse = np.mean(np.square(np.asarray(a, np.float64) - np.asarray(b, np.float64)), axis=(1, 2, 3))
    return np.minimum(10.0 * np.log10(1.0 / np.maximum(mse, 1e-10)), 100.0)


def image_grid(images: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """Model-space images (N, H, W, C) -> one uint8 grid image (rows*(H+pad)+pad, cols*(W+pad)+pad, C)
    on a mid-grey background; `columns` defaults to ceil(sqrt(N))."""
    x = np.asarray(images, np.float32)
    if x.ndim != 4 or len(x) == 0:
        raise ValueError(f"expected a non-empty (N, H, W, C) batch, got shape {x.shape}")
    n, h, w, c = x.shape
    cols = max(1, min(n, columns or math.ceil(math.sqrt(n))))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 128, np.uint8)
    pixels = np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[top:top + h, left:left + w] = pixels[i]
    return grid


def save_grid(path: str | Path, images: np.ndarray, columns: int | None = None, *, scale: int = 1) -> Path:
    """Write `image_grid(images, columns)` as a PNG, atomically; `scale` enlarges it (nearest neighbour)."""
    from PIL import Image

    grid = image_grid(images, columns)
    img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())
