"""Building blocks of the generative models: convolutional encoder and decoder, the VAE's sampling
layer (reparameterisation trick), training-only pixel noise and a per-image reconstruction error.

Images inside these blocks are float (B, H, W, C) in [0, 1] (after ``ImagePreprocessing``); latent
vectors are (B, latent_dim). Every block is made of built-in Keras layers and ``keras.ops``, so it
serialises to ``.keras`` files and converts to TFLite builtins (CONV_2D, TRANSPOSE_CONV,
FULLY_CONNECTED, LOGISTIC, STRIDED_SLICE, MEAN); the random layers add no ops at inference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras

from sensorium.models.blocks.conv import BN_MOMENTUM, ConvBNAct

_PACKAGE = "sensorium"


def _widths(widths: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(w) for w in widths)
    if not out or min(out) < 1:
        raise ValueError(f"widths must be one or more positive filter counts, got {widths}")
    return out


# === Layers ===
@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvEncoder(keras.layers.Layer):
    """Image -> latent vector: one stride-2 ``ConvBNAct`` per entry of ``widths``, flatten, Dense.

    Input (B, H, W, C) float in [0, 1] with a known H, W. Output (B, latent_dim), or with
    ``variational=True`` the pair (z_mean, z_log_var), each (B, latent_dim) float32. With
    ``latent_dim=1`` and ``use_bn=False`` it is a DCGAN discriminator (one logit per image).
    ``dropout`` is applied after each convolution, in training only.
    """

    def __init__(
        self,
        latent_dim: int,
        widths: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        activation: str = "relu",
        use_bn: bool = True,
        dropout: float = 0.0,
        variational: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if int(latent_dim) < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.latent_dim = int(latent_dim)
        self.widths = _widths(widths)
        self.kernel_size = int(kernel_size)
        self.activation = activation
        self.use_bn = bool(use_bn)
        self.dropout = float(dropout)
        self.variational = bool(variational)
        policy = self.dtype_policy
        self.convs = [
            ConvBNAct(w, self.kernel_size, strides=2, activation=self.activation, use_bn=self.use_bn,
                      dtype=policy, name=f"conv{i + 1}")
            for i, w in enumerate(self.widths)
        ]
        self.drops = [keras.layers.Dropout(self.dropout, dtype=policy, name=f"dropout{i + 1}")
                      for i in range(len(self.widths))] if self.dropout > 0 else []
        self.flatten = keras.layers.Flatten(dtype=policy, name="flatten")
        # Latent outputs in float32 (also under mixed precision): the KL term and the logits need it.
        self.dense = keras.layers.Dense(self.latent_dim, dtype="float32", name="z_mean" if self.variational else "z")
        self.dense_log_var = (keras.layers.Dense(self.latent_dim, dtype="float32", kernel_initializer="zeros",
                                                 name="z_log_var") if self.variational else None)

    def build(self, input_shape: tuple) -> None:
        if input_shape[1] is None or input_shape[2] is None:
            raise ValueError(f"ConvEncoder needs a known image size, got {input_shape}")
        shape = tuple(input_shape)
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.flatten.build(shape)
        flat = (shape[0], int(shape[1]) * int(shape[2]) * int(shape[3]))
        self.dense.build(flat)
        if self.dense_log_var is not None:
            self.dense_log_var.build(flat)

    def call(self, x, training: bool | None = None):
        # x: (B, H, W, C) in [0, 1]
        for i, conv in enumerate(self.convs):
            x = conv(x, training=training)  # (B, H/2^(i+1), W/2^(i+1), widths[i])
            if self.drops:
                x = self.drops[i](x, training=training)
        x = self.flatten(x)  # (B, H/2^n * W/2^n * widths[-1])
        if self.dense_log_var is None:
            return self.dense(x)  # (B, latent_dim)
        return self.dense(x), self.dense_log_var(x)  # (B, latent_dim) each

    def compute_output_shape(self, input_shape: tuple):
        out = (input_shape[0], self.latent_dim)
        return (out, out) if self.variational else out

    def compute_output_spec(self, x, training: bool | None = None):
        spec = keras.KerasTensor((x.shape[0], self.latent_dim), dtype="float32")
        return (spec, keras.KerasTensor(spec.shape, dtype="float32")) if self.variational else spec

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            widths=list(self.widths),
            kernel_size=self.kernel_size,
            activation=self.activation,
            use_bn=self.use_bn,
            dropout=self.dropout,
            variational=self.variational,
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvDecoder(keras.layers.Layer):
    """Latent vector -> image: Dense to a (h0, w0, widths[0]) grid, one stride-2 Conv2DTranspose
    (+ BN + activation) per entry of ``widths``, a 3x3 convolution to ``channels``, the output
    activation (sigmoid: [0, 1] pixels) and a centre crop to ``image_size``.

    (h0, w0) = ceil(image_size / 2^len(widths)), so any image size works (28 with two stages:
    7 -> 14 -> 28; 30 would be 8 -> 16 -> 32, cropped to 30). Input (B, latent_dim); output
    (B, H, W, channels) float32.
    """

    def __init__(
        self,
        image_size: Sequence[int] = (28, 28),
        channels: int = 1,
        widths: Sequence[int] = (64, 32),
        kernel_size: int = 4,
        activation: str = "relu",
        use_bn: bool = True,
        output_activation: str = "sigmoid",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if len(image_size) != 2 or min(int(s) for s in image_size) < 1:
            raise ValueError(f"image_size must be (height, width) > 0, got {image_size}")
        if int(channels) < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.channels = int(channels)
        self.widths = _widths(widths)
        self.kernel_size = int(kernel_size)
        self.activation = activation
        self.use_bn = bool(use_bn)
        self.output_activation = output_activation
        scale = 2 ** len(self.widths)
        self.start = (math.ceil(self.image_size[0] / scale), math.ceil(self.image_size[1] / scale))
        policy = self.dtype_policy
        self.project = keras.layers.Dense(self.start[0] * self.start[1] * self.widths[0], use_bias=not self.use_bn,
                                          dtype=policy, name="project")
        self.project_bn = (keras.layers.BatchNormalization(momentum=BN_MOMENTUM, dtype=policy, name="project_bn")
                           if self.use_bn else None)
        self.project_act = keras.layers.Activation(self.activation, dtype=policy, name="project_act")
        self.reshape = keras.layers.Reshape((*self.start, self.widths[0]), dtype=policy, name="reshape")
        self.ups, self.up_bns, self.up_acts = [], [], []
        for i, w in enumerate(self.widths):
            self.ups.append(keras.layers.Conv2DTranspose(w, self.kernel_size, strides=2, padding="same",
                                                         use_bias=not self.use_bn, kernel_initializer="he_normal",
                                                         dtype=policy, name=f"up{i + 1}"))
            if self.use_bn:
                self.up_bns.append(keras.layers.BatchNormalization(momentum=BN_MOMENTUM, dtype=policy,
                                                                   name=f"up{i + 1}_bn"))
            self.up_acts.append(keras.layers.Activation(self.activation, dtype=policy, name=f"up{i + 1}_act"))
        self.to_image = keras.layers.Conv2D(self.channels, 3, padding="same", dtype=policy, name="to_image")
        self.out_act = keras.layers.Activation(self.output_activation, dtype="float32", name="output")

    def build(self, input_shape: tuple) -> None:
        self.project.build(input_shape)
        units = self.start[0] * self.start[1] * self.widths[0]
        if self.project_bn is not None:
            self.project_bn.build((input_shape[0], units))
        self.reshape.build((input_shape[0], units))
        shape = (input_shape[0], *self.start, self.widths[0])
        for i, up in enumerate(self.ups):
            up.build(shape)
            shape = (shape[0], shape[1] * 2, shape[2] * 2, self.widths[i])
            if self.use_bn:
                self.up_bns[i].build(shape)
        self.to_image.build(shape)

    def call(self, z, training: bool | None = None):
        # z: (B, latent_dim)
        x = self.project(z)  # (B, h0 * w0 * widths[0])
        if self.project_bn is not None:
            x = self.project_bn(x, training=training)
        x = self.reshape(self.project_act(x))  # (B, h0, w0, widths[0])
        for i, up in enumerate(self.ups):
            x = up(x)  # (B, h0 * 2^(i+1), w0 * 2^(i+1), widths[i])
            if self.use_bn:
                x = self.up_bns[i](x, training=training)
            x = self.up_acts[i](x)
        x = self.out_act(self.to_image(x))  # (B, h0 * 2^n, w0 * 2^n, channels) float32
        top = (x.shape[1] - self.image_size[0]) // 2
        left = (x.shape[2] - self.image_size[1]) // 2
        if top or left or x.shape[1] != self.image_size[0] or x.shape[2] != self.image_size[1]:
            x = x[:, top:top + self.image_size[0], left:left + self.image_size[1], :]  # centre crop
        return x  # (B, H, W, channels)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], *self.image_size, self.channels)

    def compute_output_spec(self, z, training: bool | None = None) -> keras.KerasTensor:
        return keras.KerasTensor(self.compute_output_shape(z.shape), dtype="float32")

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            image_size=list(self.image_size),
            channels=self.channels,
            widths=list(self.widths),
            kernel_size=self.kernel_size,
            activation=self.activation,
            use_bn=self.use_bn,
            output_activation=self.output_activation,
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Sampling(keras.layers.Layer):
    """The reparameterisation trick: (z_mean, z_log_var) -> z = z_mean + exp(z_log_var / 2) * eps,
    eps ~ N(0, I), so gradients flow through the mean and the variance. Each (B, latent_dim).

    It samples whenever it is called (a VAE calls it in training and when estimating the ELBO, and
    uses z_mean for deterministic reconstructions). ``seed`` makes the noise stream reproducible.
    """

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = None if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs  # (B, L), (B, L)
        eps = keras.random.normal(keras.ops.shape(z_mean), seed=self.seed_generator, dtype=z_mean.dtype)
        return z_mean + keras.ops.exp(0.5 * z_log_var) * eps  # (B, L)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PixelNoise(keras.layers.Layer):
    """Additive Gaussian noise of ``stddev`` in [0, 1] pixel units, clipped back to [0, 1], in
    training only (a denoising autoencoder's corruption). Identity at inference: no ops exported.

    Clipping makes the training inputs look like the noisy uint8 images the model sees later.
    """

    def __init__(self, stddev: float = 0.0, clip: bool = True, seed: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if float(stddev) < 0:
            raise ValueError(f"stddev must be >= 0, got {stddev}")
        self.stddev = float(stddev)
        self.clip = bool(clip)
        self.seed = None if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def call(self, x, training: bool | None = None):
        # x: (B, H, W, C) in [0, 1]
        if not training or self.stddev == 0:
            return x
        x = x + self.stddev * keras.random.normal(keras.ops.shape(x), seed=self.seed_generator, dtype=x.dtype)
        return keras.ops.clip(x, 0.0, 1.0) if self.clip else x  # (B, H, W, C)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(stddev=self.stddev, clip=self.clip, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PerImageMSE(keras.layers.Layer):
    """[target, reconstruction], each (B, H, W, C) -> mean squared difference per image (B,) float32
    (the autoencoder's anomaly score, in [0, 1] pixel units squared)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        target, reconstruction = inputs
        diff = keras.ops.cast(target, "float32") - keras.ops.cast(reconstruction, "float32")  # (B, H, W, C)
        return keras.ops.mean(keras.ops.square(diff), axis=(1, 2, 3))  # (B,)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0],)

    def compute_output_spec(self, inputs) -> keras.KerasTensor:
        return keras.KerasTensor((inputs[0].shape[0],), dtype="float32")
