"""Train an autoencoder, VAE or GAN into a run directory (resumable, checkpointed every epoch, a PNG
grid of samples per epoch, evaluated at the end).

Run directory extras: `samples/epoch-NNN.png` (VAE/GAN: the same fixed latent vectors every epoch;
autoencoder: validation images, their noisy versions and the reconstructions), and for the
autoencoder `anomaly.json` (the anomaly threshold calibrated on the validation images, also stored
in the model's metadata).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

from sensorium.pipelines.common.rundir import RunDir
from sensorium.pipelines.generative.config import AutoencoderConfig, GANConfig, GANTrainConfig, VAEConfig

log = logging.getLogger(__name__)

ANOMALY_FILE = "anomaly.json"
SAMPLES_DIR = "samples"
AE_COLUMNS = 16  # validation images shown per autoencoder grid


def train_autoencoder(config: AutoencoderConfig, run: RunDir, *, resume: bool = False) -> dict[str, Any]:
    """Train a (denoising) autoencoder into `run`; returns the run summary."""
    return _train("autoencoder", config, run, resume)


def train_vae(config: VAEConfig, run: RunDir, *, resume: bool = False) -> dict[str, Any]:
    """Train a VAE into `run`; returns the run summary."""
    return _train("vae", config, run, resume)


def train_gan(config: GANConfig, run: RunDir, *, resume: bool = False) -> dict[str, Any]:
    """Train a DCGAN into `run`; returns the run summary."""
    return _train("gan", config, run, resume)


# === Models ===
def build_model(task: str, cfg: Any, *, anomaly_threshold: float | None = None,
                latent_prior: dict[str, Any] | None = None) -> Any:
    """A new, uncompiled model of `task` for `cfg` (its variables created)."""
    if task == "autoencoder":
        from sensorium.models.autoencoder import build_autoencoder

        return build_autoencoder(cfg.model, anomaly_threshold=anomaly_threshold, seed=cfg.seed)
    if task == "vae":
        from sensorium.models.vae import build_vae

        return build_vae(cfg.model, seed=cfg.seed, latent_prior=latent_prior)
    from sensorium.models.gan import build_gan

    return build_gan(cfg.model, seed=cfg.seed)


def _gan_optimizer(tcfg: GANTrainConfig, learning_rate: float, steps: int) -> Any:
    """make_optimizer's optimizer and schedule at `learning_rate`, with DCGAN's Adam beta_1."""
    from sensorium.pipelines.common.optimizers import make_optimizer

    opt = make_optimizer(replace(tcfg, learning_rate=learning_rate), steps)
    if tcfg.optimizer in ("adam", "adamw"):
        opt = type(opt).from_config({**opt.get_config(), "beta_1": tcfg.beta_1})
    return opt


def compile_model(task: str, model: Any, cfg: Any, steps: int) -> None:
    """Compile `model` with the optimizers of `cfg.train` (the GAN: one per network)."""
    from sensorium.pipelines.common.optimizers import make_optimizer

    tcfg = cfg.train
    if task == "autoencoder":
        model.compile(optimizer=make_optimizer(tcfg, steps), loss="mse")
    elif task == "vae":
        model.compile(optimizer=make_optimizer(tcfg, steps))
    else:
        d_lr = tcfg.discriminator_learning_rate or tcfg.learning_rate
        model.compile(d_optimizer=_gan_optimizer(tcfg, d_lr, steps),
                      g_optimizer=_gan_optimizer(tcfg, tcfg.learning_rate, steps))


# === Sample grids ===
class SampleGrid(keras.callbacks.Callback):
    """After every epoch, `render(model)` -> images (N, H, W, C) in [0, 1] is saved as
    FOLDER/epoch-NNN.png (atomically). Placed before RunState, so a resumed run has a grid for every
    finished epoch."""

    def __init__(self, folder: Path, render: Callable[[Any], np.ndarray], columns: int | None, scale: int = 1) -> None:
        super().__init__()
        self.folder, self.render, self.columns, self.scale = Path(folder), render, columns, scale

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        from sensorium.pipelines.generative.images import save_grid

        path = save_grid(self.folder / f"epoch-{epoch + 1:03d}.png", self.render(self.model), self.columns,
                         scale=self.scale)
        log.debug("wrote %s", path)


def _renderer(task: str, cfg: Any, val_pixels: np.ndarray | None) -> tuple[Callable[[Any], np.ndarray], int | None]:
    """(render(model) -> images, grid columns) for the per-epoch sample grid."""
    from sensorium.pipelines.generative.images import add_noise, fixed_latents, to_pixels

    if task in ("vae", "gan"):
        z = fixed_latents(cfg.sample_grid, cfg.model.latent_dim, cfg.seed)
        return (lambda model: np.asarray(model.generate(z, training=False))), None

    from sensorium.models.autoencoder import preprocess

    count = min(AE_COLUMNS, cfg.sample_grid, len(val_pixels))
    pixels = val_pixels[np.linspace(0, len(val_pixels) - 1, count).round().astype(int)]  # spread over the split
    sigma = cfg.model.noise_sigma

    def render(model: Any) -> np.ndarray:
        clean = np.asarray(preprocess(model, pixels))  # (n, H, W, C)
        rows = [clean]
        inputs = pixels
        if sigma > 0:
            noisy = add_noise(clean, sigma, cfg.seed)
            inputs = to_pixels(noisy)
            rows.append(np.asarray(preprocess(model, inputs)))  # the noisy images as the model sees them
        rows.append(np.asarray(model(inputs, training=False)))  # reconstructions
        return np.concatenate(rows)

    return render, len(pixels)


# === Training ===
def _datasets(task: str, model: Any, train_split: Any, val_split: Any, batch_size: int, seed: int) -> tuple[Any, Any]:
    """(train, validation) datasets: uint8 pixels; for the autoencoder (pixels, clean target), the
    target being the model's own preprocessing of the pixels (the loss compares it with the output)."""
    from sensorium.pipelines.generative.data import pixels_dataset

    train_ds = pixels_dataset(train_split, batch_size, training=True, seed=seed)
    val_ds = pixels_dataset(val_split, batch_size)
    if task != "autoencoder":
        return train_ds, val_ds
    from sensorium.models.blocks.image_preprocessing import ImagePreprocessing

    pre = model.get_layer("preprocessing")
    target = ImagePreprocessing.from_config(pre.get_config())  # same settings, no weights: safe in tf.data
    pair = lambda x: (x, target(x))  # noqa: E731
    return train_ds.map(pair), val_ds.map(pair)


def _train(task: str, cfg: Any, run: RunDir, resume: bool) -> dict[str, Any]:
    from sensorium.pipelines.common.callbacks import read_train_state
    from sensorium.pipelines.common.training import (
        fit_run,
        resume_or_build,
        run_summary,
        save_inference_model,
        start_training,
        write_split_lists,
    )
    from sensorium.pipelines.generative.data import load_train_images, take_pixels
    from sensorium.pipelines.generative.modeling import register_models

    register_models()
    tcfg = cfg.train
    policy, strategy = start_training(run, cfg)
    size = (int(cfg.model.image_size[0]), int(cfg.model.image_size[1]))
    train_split, val_split = load_train_images(cfg.data, seed=cfg.seed, image_size=size)
    write_split_lists(run, [(s.split, s.ids) for s in (train_split, val_split)],
                      train_split.failures + [f for f in val_split.failures if f not in train_split.failures])
    log.info("data: %d training and %d validation images%s", train_split.count, val_split.count,
             f" of the classes {', '.join(cfg.data.classes)}" if cfg.data.classes else "")

    steps = math.ceil(train_split.count / tcfg.batch_size)
    ckpt_dir = run.path / "checkpoints"
    state = read_train_state(ckpt_dir) if resume else None

    def build():
        model = build_model(task, cfg)
        compile_model(task, model, cfg, steps)
        return model

    model = resume_or_build(strategy, ckpt_dir, state, build)
    train_ds, val_ds = _datasets(task, model, train_split, val_split, tcfg.batch_size, cfg.seed)
    val_pixels = take_pixels(val_split)[0] if task == "autoencoder" else None  # grid and threshold calibration
    grids = ()
    if run.chief:
        render, columns = _renderer(task, cfg, val_pixels)
        grids = (SampleGrid(run.sub(SAMPLES_DIR), render, columns, scale=2 if max(size) <= 64 else 1),)
    run_state = fit_run(run, model, train_ds, val_ds, tcfg, steps, state, callbacks=grids)

    extra: dict[str, Any] = {"train_count": train_split.count, "validation_count": val_split.count}
    threshold = None
    if task == "autoencoder":
        threshold = calibrate_threshold(run, model, val_pixels, tcfg.anomaly_quantile, tcfg.batch_size)
        extra["anomaly_threshold"] = threshold
    prior = None
    if task == "vae" and tcfg.latent_prior == "mixture":
        prior = fit_latent_prior(run, model, take_pixels(train_split)[0], tcfg.prior_components, cfg.seed,
                                 tcfg.batch_size)
        extra["latent_prior"] = f"gaussian mixture of {len(prior.weights)} components"
    save_inference_model(run, model, lambda: build_model(task, cfg, anomaly_threshold=threshold,
                                                         latent_prior=None if prior is None else prior.to_info()))
    summary = run_summary(run_state, tcfg, policy, strategy, **extra)
    _report(task, run, cfg, run_state.history, summary)
    return summary


def fit_latent_prior(run: RunDir, model: Any, pixels: np.ndarray, components: int, seed: int,
                     batch_size: int) -> Any:
    """A Gaussian mixture fitted to the training images' codes (z_mean), written to RUN_DIR/latent_prior.json
    (the model's metadata gets it too): `generate` and evaluation sample from it."""
    from sensorium.pipelines.generative.images import LatentPrior

    step = max(batch_size, 256)
    codes = np.concatenate([np.asarray(model.encoder(model.preprocessing(pixels[i:i + step]), training=False)[0])
                            for i in range(0, len(pixels), step)])  # (N, L)
    prior = LatentPrior.fit(codes, components, seed)
    if run.chief:
        run.write_json("latent_prior.json", {**prior.to_info(), "fitted_on": "training", "count": int(len(codes))})
    log.info("latent prior: a Gaussian mixture of %d components fitted to %d training codes", len(prior.weights),
             len(codes))
    return prior


def calibrate_threshold(run: RunDir, model: Any, val_pixels: np.ndarray, quantile: float, batch_size: int) -> float:
    """The anomaly threshold: the `quantile` of the validation images' reconstruction MSE, written to
    RUN_DIR/anomaly.json (the model's metadata gets it too)."""
    from sensorium.models.autoencoder import reconstruction_errors

    errors = reconstruction_errors(model, val_pixels, batch_size=max(batch_size, 64)).astype(np.float64)
    threshold = float(np.quantile(errors, quantile))
    if run.chief:
        run.write_json(ANOMALY_FILE, {
            "threshold": threshold, "quantile": quantile, "calibrated_on": "validation", "count": int(len(errors)),
            "score": "per-image mean squared reconstruction error at the model's size and channels, [0, 1] pixel "
                     "units; an image scoring above the threshold is anomalous",
            "validation_mean": float(errors.mean()), "validation_std": float(errors.std()),
            "validation_max": float(errors.max()),
        })
    log.info("anomaly threshold %.5f (the %g quantile of %d validation reconstruction errors)", threshold, quantile,
             len(errors))
    return threshold


def _report(task: str, run: RunDir, cfg: Any, history: dict, summary: dict[str, Any]) -> None:
    """Plots, evaluation on the held-out split, model card; then the run is marked complete."""
    from sensorium.pipelines.common.training import finish_run
    from sensorium.pipelines.generative.card import write_card
    from sensorium.pipelines.generative.evaluate import evaluate

    finish_run(run, history=history, summary=summary, data_spec=cfg.data.spec, evaluate_on=cfg.evaluate_on,
               evaluate=lambda spec: evaluate(run.path, spec, require_complete=False),
               write_card=lambda metrics: write_card(task, run, cfg, summary, metrics))
