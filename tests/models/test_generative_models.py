"""Generative blocks and models: shapes, KL >= 0, one GAN step trains both networks, .keras round trips
(safe_mode=True) and a GAN checkpoint that brings back both optimizers. Tiny models only."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from sensorium.models.autoencoder import (
    AutoencoderSpec,
    build_autoencoder,
    decoder_model,
    reconstruction_error_model,
    reconstruction_errors,
)
from sensorium.models.blocks import ConvDecoder, ConvEncoder, PerImageMSE, PixelNoise, Sampling, read_task_metadata
from sensorium.models.gan import GAN, GANSpec, build_gan
from sensorium.models.vae import VAE, VAESpec, build_vae, kl_divergence

TINY = dict(latent_dim=3, widths=(4, 8))


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (6, 20, 24, 3), dtype=np.uint8)


def _tiny_gan(**kw) -> GAN:
    return build_gan(GANSpec(image_size=(16, 16), discriminator_widths=(4, 8), **TINY, **kw), seed=3)


# === Blocks ===
def test_encoder_decoder_shapes_any_size():
    x = np.random.default_rng(1).random((2, 30, 20, 1)).astype("float32")
    z = ConvEncoder(5, widths=(4, 8))(x)
    assert z.shape == (2, 5)
    mean, log_var = ConvEncoder(5, widths=(4, 8), variational=True)(x)
    assert mean.shape == log_var.shape == (2, 5)
    decoder = ConvDecoder((30, 20), 1, widths=(8, 4))  # 30x20 is not a multiple of 4: 8x5 grid -> 32x20, cropped
    y = np.asarray(decoder(np.zeros((2, 7), "float32")))
    assert y.shape == (2, 30, 20, 1) and y.min() >= 0 and y.max() <= 1
    logits = ConvEncoder(1, widths=(4,), activation="leaky_relu", use_bn=False, dropout=0.3)(x)
    assert logits.shape == (2, 1)


@pytest.mark.parametrize("layer", [
    ConvEncoder(4, widths=(3, 5), kernel_size=5, activation="leaky_relu", use_bn=False, dropout=0.2, variational=True),
    ConvDecoder((12, 10), 3, widths=(6, 4), kernel_size=3, use_bn=False, output_activation="linear"),
    Sampling(seed=7), PixelNoise(0.25, clip=False, seed=1), PerImageMSE(),
])
def test_block_configs_round_trip(layer):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    assert keras.saving.get_registered_name(type(layer)) == f"sensorium>{type(layer).__name__}"


def test_sampling_and_noise():
    mean = np.full((4000, 2), 3.0, "float32")
    log_var = np.full((4000, 2), np.log(0.25), "float32")  # std 0.5
    z = np.asarray(Sampling(seed=0)([mean, log_var]))
    assert abs(z.mean() - 3.0) < 0.05 and abs(z.std() - 0.5) < 0.05
    x = np.full((2, 8, 8, 1), 0.5, "float32")
    noise = PixelNoise(0.3, seed=0)
    assert np.array_equal(np.asarray(noise(x, training=False)), x)  # identity at inference
    noisy = np.asarray(noise(x, training=True))
    assert noisy.min() >= 0 and noisy.max() <= 1 and 0.15 < noisy.std() < 0.35
    err = np.asarray(PerImageMSE()([x, np.zeros_like(x)]))
    np.testing.assert_allclose(err, [0.25, 0.25])


# === Autoencoder ===
def test_autoencoder_shapes_errors_decoder(pixels):
    model = build_autoencoder(AutoencoderSpec(image_size=(16, 16), noise_sigma=0.3, **TINY), anomaly_threshold=0.02)
    recon = np.asarray(model(pixels))
    assert recon.shape == (6, 16, 16, 1) and recon.min() >= 0 and recon.max() <= 1
    errors = reconstruction_errors(model, pixels, batch_size=4)
    clean = np.asarray(model.get_layer("preprocessing")(pixels))
    np.testing.assert_allclose(errors, np.mean((clean - recon) ** 2, axis=(1, 2, 3)), rtol=1e-5)
    out = reconstruction_error_model(model)(pixels)
    assert out["error"].shape == (6,) and out["reconstruction"].shape == (6, 16, 16, 1)
    assert decoder_model(model)(np.zeros((2, 3), "float32")).shape == (2, 16, 16, 1)
    meta = read_task_metadata(model)
    assert meta["task"] == "autoencoder" and meta["info"]["anomaly_threshold"] == 0.02
    assert meta["info"]["latent_dim"] == 3 and meta["info"]["image_size"] == [16, 16]


# === VAE ===
def test_kl_divergence_is_non_negative_and_zero_at_the_prior():
    rng = np.random.default_rng(0)
    mean = rng.normal(0, 3, (256, 4)).astype("float32")
    log_var = rng.normal(0, 3, (256, 4)).astype("float32")
    assert np.asarray(kl_divergence(mean, log_var)).min() >= 0
    np.testing.assert_allclose(np.asarray(kl_divergence(np.zeros((2, 4)), np.zeros((2, 4)))), 0.0, atol=1e-7)


def test_vae_shapes_and_train_step_reports_its_terms(pixels):
    model = build_vae(VAESpec(image_size=(16, 16), **TINY), seed=0)
    assert model(pixels).shape == (6, 16, 16, 1)
    z_mean, z_log_var = model.encode(pixels)
    assert z_mean.shape == z_log_var.shape == (6, 3)
    assert model.generate(np.zeros((2, 3), "float32")).shape == (2, 16, 16, 1)
    assert model.decoder.inputs[0].shape == (None, 3)  # the standalone generator: latent in, image out
    rec, kl = model.loss_terms(pixels)
    assert rec.shape == kl.shape == (6,) and np.asarray(kl).min() >= 0 and np.asarray(rec).min() > 0
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = model.train_on_batch(pixels, return_dict=True)
    assert set(logs) == {"loss", "reconstruction_loss", "kl_loss"} and logs["kl_loss"] >= 0
    assert logs["loss"] == pytest.approx(logs["reconstruction_loss"] + logs["kl_loss"], rel=1e-5)
    assert read_task_metadata(model)["task"] == "vae"


# === GAN ===
def test_one_gan_step_updates_generator_and_discriminator(pixels):
    model = _tiny_gan()
    model.compile(d_optimizer=keras.optimizers.Adam(1e-2, beta_1=0.5),
                  g_optimizer=keras.optimizers.Adam(1e-2, beta_1=0.5))
    assert model.optimizer is None  # only the two networks' optimizers
    g_before = [w.numpy().copy() for w in model.generator.trainable_weights]
    d_before = [w.numpy().copy() for w in model.discriminator.trainable_weights]
    logs = model.train_on_batch(pixels, return_dict=True)
    assert {"d_loss", "g_loss", "real_score", "fake_score"} <= set(logs)
    assert all(np.isfinite(v) for v in logs.values())
    assert all(not np.allclose(b, w.numpy()) for b, w in zip(g_before, model.generator.trainable_weights))
    assert all(not np.allclose(b, w.numpy()) for b, w in zip(d_before, model.discriminator.trainable_weights))
    assert int(model.d_optimizer.iterations) == int(model.g_optimizer.iterations) == 1
    assert model.generate(np.zeros((2, 3), "float32")).shape == (2, 16, 16, 1)
    assert model.discriminate(pixels).shape == (6, 1)


# === Saving ===
@pytest.mark.parametrize("task", ["autoencoder", "vae", "gan"])
def test_keras_round_trip_with_safe_mode_gives_identical_outputs(task, pixels, tmp_path):
    if task == "autoencoder":
        model = build_autoencoder(AutoencoderSpec(image_size=(16, 16), noise_sigma=0.2, **TINY), anomaly_threshold=0.5)
        run = lambda m: m(pixels, training=False)  # noqa: E731
    elif task == "vae":
        model = build_vae(VAESpec(image_size=(16, 16), beta=2.0, **TINY), seed=1)
        run = lambda m: m(pixels, training=False)  # noqa: E731
    else:
        model = _tiny_gan()
        z = np.random.default_rng(0).standard_normal((4, 3)).astype("float32")
        run = lambda m: m.generate(z)  # noqa: E731
    path = tmp_path / f"{task}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(np.asarray(run(loaded)), np.asarray(run(model)))
    assert read_task_metadata(loaded) == read_task_metadata(model)
    if task == "vae":
        assert isinstance(loaded, VAE) and loaded.beta == 2.0 and loaded.latent_dim == 3
    if task == "gan":  # the discriminator comes back too
        np.testing.assert_array_equal(np.asarray(loaded.discriminate(pixels)), np.asarray(model.discriminate(pixels)))


def test_gan_checkpoint_restores_both_optimizers(pixels, tmp_path):
    model = _tiny_gan(discriminator_dropout=0.0)
    model.compile(d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                  g_optimizer=keras.optimizers.SGD(1e-2, momentum=0.9))
    for _ in range(3):
        model.train_on_batch(pixels)
    model.save(tmp_path / "last.keras")
    loaded = keras.saving.load_model(tmp_path / "last.keras", safe_mode=True)
    assert loaded.compiled and isinstance(loaded.g_optimizer, keras.optimizers.SGD)
    assert loaded.d_optimizer.beta_1 == 0.5 and loaded.g_optimizer.momentum == 0.9
    for original, restored in ((model.d_optimizer, loaded.d_optimizer), (model.g_optimizer, loaded.g_optimizer)):
        assert int(restored.iterations) == 3
        assert len(restored.variables) == len(original.variables) > 1
        for a, b in zip(original.variables, restored.variables):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    logs = loaded.train_on_batch(pixels, return_dict=True)  # and it trains on from there
    assert np.isfinite(logs["d_loss"]) and int(loaded.d_optimizer.iterations) == 4


# === Learning ===
@pytest.fixture(scope="module")
def squares() -> np.ndarray:
    """64 noisy dark 16x16 images, each with a bright 6x6 square somewhere: easy to learn, not trivial."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 30, (64, 16, 16, 3), dtype=np.uint8)
    for img, (r, c) in zip(x, rng.integers(1, 9, (64, 2))):
        img[r : r + 6, c : c + 6] = 230
    return x


def _fit(model, x, y=None, steps: int = 120, batch: int = 16) -> None:
    for step in range(steps):
        idx = np.arange(step * batch, (step + 1) * batch) % len(x)
        model.train_on_batch(x[idx], None if y is None else y[idx])


def test_the_autoencoder_learns_to_reconstruct(squares):
    keras.utils.set_random_seed(0)
    model = build_autoencoder(AutoencoderSpec(image_size=(16, 16), channels=1, **TINY), seed=0)
    target = model.get_layer("preprocessing")(squares)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    untrained = float(np.mean(reconstruction_errors(model, squares)))
    _fit(model, squares, np.asarray(target))
    trained = float(np.mean(reconstruction_errors(model, squares)))
    assert trained < 0.25 * untrained, (trained, untrained)  # measured: 0.018 against 0.19


def test_the_vae_learns_to_reconstruct(squares):
    keras.utils.set_random_seed(0)
    model = build_vae(VAESpec(image_size=(16, 16), channels=1, **TINY), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    untrained = float(np.mean(model.loss_terms(squares)[0]))
    _fit(model, squares)
    trained = float(np.mean(model.loss_terms(squares)[0]))
    assert trained < 0.6 * untrained, (trained, untrained)  # measured: 79 against 175


def test_the_gan_learns_both_ways(squares):
    """The discriminator learns to tell real from generated images, and the generator's images move
    towards the data: their mean brightness approaches the real images' (dark, with one bright square)."""
    keras.utils.set_random_seed(0)
    model = _tiny_gan()
    model.compile(d_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5),
                  g_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5))
    z = np.random.default_rng(1).normal(size=(64, 3)).astype("float32")
    real = float(np.mean(squares[..., 0] / 255.0))

    def gap() -> float:
        return abs(float(np.mean(model.generate(z))) - real)

    before = gap()
    _fit(model, squares, steps=150)
    assert gap() < 0.25 * before, (gap(), before)  # measured: 0.013 against 0.32
    real_score = float(np.mean(np.asarray(model.discriminate(squares))))
    fake_score = float(np.mean(np.asarray(model.discriminate((np.asarray(model.generate(z)) * 255).astype(np.uint8)
                                                            .repeat(3, axis=-1)))))
    assert real_score > fake_score + 0.5, (real_score, fake_score)  # logits; measured 0.46 against -0.95
