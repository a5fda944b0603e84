"""Convolutional building blocks (NHWC): conv-BN-activation, squeeze-excite, separable, residual and
inverted residual (MBConv).

All blocks are plain ``keras.layers.Layer`` subclasses made of built-in Keras layers, so they
serialise to ``.keras`` files, follow the global dtype policy (mixed precision) and convert to
TFLite with builtin ops only. Shapes below use B = batch, H/W = spatial size, C = input channels.
"""

from __future__ import annotations

from typing import Any

import keras

_PACKAGE = "sensorium"
# BatchNorm moving-average momentum. 0.9 (PyTorch's default) lets the inference statistics settle
# within a few hundred steps, which matters for the short CPU training runs of small datasets.
BN_MOMENTUM = 0.9


def _same_padding_size(size: int | None, strides: int) -> int | None:
    """Spatial size after a ``padding="same"`` op with ``strides`` (ceil division)."""
    return None if size is None else -(-size // strides)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvBNAct(keras.layers.Layer):
    """Conv2D (same padding, he_normal) -> optional BatchNorm -> optional activation.

    The convolution has no bias when batch norm follows it (BN's beta plays that role).
    ``activation=None`` gives a linear output (used e.g. before a residual add).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        strides: int = 1,
        activation: str | None = "relu",
        use_bn: bool = True,
        groups: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.activation = activation
        self.use_bn = bool(use_bn)
        self.groups = int(groups)
        policy = self.dtype_policy
        self.conv = keras.layers.Conv2D(
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding="same",
            groups=self.groups,
            use_bias=not self.use_bn,
            kernel_initializer="he_normal",
            dtype=policy,
            name="conv",
        )
        self.bn = (
            keras.layers.BatchNormalization(momentum=BN_MOMENTUM, dtype=policy, name="bn") if self.use_bn else None
        )
        self.act = (
            keras.layers.Activation(self.activation, dtype=policy, name="act")
            if self.activation is not None
            else None
        )

    def build(self, input_shape: tuple) -> None:
        self.conv.build(input_shape)
        if self.bn is not None:
            self.bn.build(self.conv.compute_output_shape(input_shape))

    def call(self, x, training: bool | None = None):
        # x: (B, H, W, C)
        x = self.conv(x)  # (B, H/s, W/s, filters)
        if self.bn is not None:
            x = self.bn(x, training=training)  # (B, H/s, W/s, filters)
        if self.act is not None:
            x = self.act(x)
        return x  # (B, H/s, W/s, filters)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        b, h, w, _ = input_shape
        return (b, _same_padding_size(h, self.strides), _same_padding_size(w, self.strides), self.filters)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            activation=self.activation,
            use_bn=self.use_bn,
            groups=self.groups,
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SqueezeExcite(keras.layers.Layer):
    """Squeeze-and-excitation channel attention: x * sigmoid(W2 relu(W1 mean_hw(x))).

    The bottleneck has ``max(1, round(C * ratio))`` units; the 1x1 convolutions act on the
    pooled (B, 1, 1, C) tensor, i.e. they are dense layers that stay NHWC for TFLite.
    """

    def __init__(self, ratio: float = 0.25, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 < float(ratio) <= 1.0:
            raise ValueError(f"SqueezeExcite ratio must be in (0, 1], got {ratio}")
        self.ratio = float(ratio)
        self.pool = keras.layers.GlobalAveragePooling2D(keepdims=True, dtype=self.dtype_policy, name="pool")
        self.reduce = None
        self.expand = None

    def build(self, input_shape: tuple) -> None:
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("SqueezeExcite needs a known channel dimension")
        squeezed = max(1, int(round(channels * self.ratio)))
        policy = self.dtype_policy
        self.reduce = keras.layers.Conv2D(squeezed, 1, activation="relu", dtype=policy, name="reduce")
        self.expand = keras.layers.Conv2D(channels, 1, activation="sigmoid", dtype=policy, name="expand")
        pooled = (input_shape[0], 1, 1, channels)
        self.reduce.build(pooled)
        self.expand.build((input_shape[0], 1, 1, squeezed))

    def call(self, x):
        # x: (B, H, W, C)
        s = self.pool(x)  # (B, 1, 1, C)
        s = self.reduce(s)  # (B, 1, 1, C*ratio)
        s = self.expand(s)  # (B, 1, 1, C) gate in [0, 1]
        return keras.ops.multiply(x, s)  # (B, H, W, C)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(ratio=self.ratio)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DepthwiseSeparableConv(keras.layers.Layer):
    """MobileNet-style block: depthwise conv + BN + act -> optional SE -> pointwise ConvBNAct."""

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        strides: int = 1,
        activation: str | None = "relu",
        se_ratio: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.activation = activation
        self.se_ratio = None if se_ratio is None else float(se_ratio)
        policy = self.dtype_policy
        self.depthwise = keras.layers.DepthwiseConv2D(
            self.kernel_size,
            strides=self.strides,
            padding="same",
            use_bias=False,
            depthwise_initializer="he_normal",
            dtype=policy,
            name="depthwise",
        )
        self.depthwise_bn = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, dtype=policy, name="depthwise_bn")
        self.depthwise_act = (
            keras.layers.Activation(self.activation, dtype=policy, name="depthwise_act")
            if self.activation is not None
            else None
        )
        self.se = SqueezeExcite(self.se_ratio, dtype=policy, name="se") if self.se_ratio else None
        self.pointwise = ConvBNAct(self.filters, 1, activation=self.activation, dtype=policy, name="pointwise")

    def build(self, input_shape: tuple) -> None:
        self.depthwise.build(input_shape)
        shape = self.depthwise.compute_output_shape(input_shape)
        self.depthwise_bn.build(shape)
        if self.se is not None:
            self.se.build(shape)
        self.pointwise.build(shape)

    def call(self, x, training: bool | None = None):
        # x: (B, H, W, C)
        x = self.depthwise(x)  # (B, H/s, W/s, C)
        x = self.depthwise_bn(x, training=training)
        if self.depthwise_act is not None:
            x = self.depthwise_act(x)
        if self.se is not None:
            x = self.se(x)  # (B, H/s, W/s, C)
        return self.pointwise(x, training=training)  # (B, H/s, W/s, filters)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        b, h, w, _ = input_shape
        return (b, _same_padding_size(h, self.strides), _same_padding_size(w, self.strides), self.filters)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            activation=self.activation,
            se_ratio=self.se_ratio,
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ResidualBlock(keras.layers.Layer):
    """Basic ResNet block: act(F(x) + shortcut(x)).

    F = 3x3 ConvBNAct(strides) -> [spatial dropout] -> 3x3 ConvBNAct (linear) -> [SE].
    The shortcut is the identity, or a 1x1 strided conv + BN projection when ``strides > 1``
    or the channel count changes.
    """

    def __init__(
        self,
        filters: int,
        strides: int = 1,
        activation: str | None = "relu",
        se_ratio: float | None = None,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)
        self.activation = activation
        self.se_ratio = None if se_ratio is None else float(se_ratio)
        self.dropout = float(dropout)
        policy = self.dtype_policy
        self.conv1 = ConvBNAct(self.filters, 3, self.strides, activation=self.activation, dtype=policy, name="conv1")
        self.drop = (
            keras.layers.SpatialDropout2D(self.dropout, dtype=policy, name="dropout") if self.dropout > 0 else None
        )
        self.conv2 = ConvBNAct(self.filters, 3, 1, activation=None, dtype=policy, name="conv2")
        self.se = SqueezeExcite(self.se_ratio, dtype=policy, name="se") if self.se_ratio else None
        self.out_act = (
            keras.layers.Activation(self.activation, dtype=policy, name="out_act")
            if self.activation is not None
            else None
        )
        self.proj_conv = None
        self.proj_bn = None

    def build(self, input_shape: tuple) -> None:
        self.conv1.build(input_shape)
        shape = self.conv1.compute_output_shape(input_shape)
        self.conv2.build(shape)
        if self.se is not None:
            self.se.build(shape)
        if self.strides > 1 or input_shape[-1] != self.filters:
            policy = self.dtype_policy
            self.proj_conv = keras.layers.Conv2D(
                self.filters,
                1,
                strides=self.strides,
                padding="same",
                use_bias=False,
                kernel_initializer="he_normal",
                dtype=policy,
                name="proj_conv",
            )
            self.proj_bn = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, dtype=policy, name="proj_bn")
            self.proj_conv.build(input_shape)
            self.proj_bn.build(shape)

    def call(self, x, training: bool | None = None):
        # x: (B, H, W, C)
        y = self.conv1(x, training=training)  # (B, H/s, W/s, filters)
        if self.drop is not None:
            y = self.drop(y, training=training)
        y = self.conv2(y, training=training)  # (B, H/s, W/s, filters), linear
        if self.se is not None:
            y = self.se(y)
        if self.proj_conv is not None:
            shortcut = self.proj_bn(self.proj_conv(x), training=training)  # (B, H/s, W/s, filters)
        else:
            shortcut = x  # (B, H, W, filters)
        y = keras.ops.add(y, shortcut)
        if self.out_act is not None:
            y = self.out_act(y)
        return y  # (B, H/s, W/s, filters)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        b, h, w, _ = input_shape
        return (b, _same_padding_size(h, self.strides), _same_padding_size(w, self.strides), self.filters)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters,
            strides=self.strides,
            activation=self.activation,
            se_ratio=self.se_ratio,
            dropout=self.dropout,
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class InvertedResidual(keras.layers.Layer):
    """MobileNetV2 / EfficientNet inverted residual block (MBConv), without squeeze-excite.

    [expand 1x1 ConvBNAct (C -> C * expand_ratio), when expand_ratio > 1] -> depthwise k x k conv
    (strides) + BN + act -> project 1x1 conv + BN, linear (-> filters) -> [drop-connect] -> + x when
    strides == 1 and C == filters. Batch norm uses epsilon 1e-3 and padding is TensorFlow's "same",
    as the EfficientNet-Lite checkpoints expect. Drop-connect (``drop_rate``) drops the whole residual
    branch of a sample while training (stochastic depth); it is the identity at inference.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        strides: int = 1,
        expand_ratio: int = 6,
        activation: str = "relu6",
        drop_rate: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if int(expand_ratio) < 1:
            raise ValueError(f"InvertedResidual expand_ratio must be >= 1, got {expand_ratio}")
        if not 0.0 <= float(drop_rate) < 1.0:
            raise ValueError(f"InvertedResidual drop_rate must be in [0, 1), got {drop_rate}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.expand_ratio = int(expand_ratio)
        self.activation = activation
        self.drop_rate = float(drop_rate)
        policy = self.dtype_policy
        self.expand = None  # made in build(): its width depends on the input channels
        self.depthwise = keras.layers.DepthwiseConv2D(
            self.kernel_size,
            strides=self.strides,
            padding="same",
            use_bias=False,
            depthwise_initializer="he_normal",
            dtype=policy,
            name="depthwise",
        )
        self.depthwise_bn = keras.layers.BatchNormalization(
            momentum=BN_MOMENTUM, epsilon=1e-3, dtype=policy, name="depthwise_bn"
        )
        self.depthwise_act = keras.layers.Activation(self.activation, dtype=policy, name="depthwise_act")
        self.project = ConvBNAct(self.filters, 1, activation=None, dtype=policy, name="project")
        self.drop = None
        self.residual = False

    def build(self, input_shape: tuple) -> None:
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("InvertedResidual needs a known channel dimension")
        shape = tuple(input_shape)
        if self.expand_ratio > 1:
            self.expand = ConvBNAct(channels * self.expand_ratio, 1, activation=self.activation,
                                    dtype=self.dtype_policy, name="expand")
            self.expand.build(shape)
            shape = self.expand.compute_output_shape(shape)
        self.depthwise.build(shape)
        shape = self.depthwise.compute_output_shape(shape)
        self.depthwise_bn.build(shape)
        self.project.build(shape)
        self.residual = self.strides == 1 and channels == self.filters
        if self.residual and self.drop_rate > 0:
            # one draw per sample: (B, 1, 1, 1)
            self.drop = keras.layers.Dropout(self.drop_rate, noise_shape=(None, 1, 1, 1), dtype=self.dtype_policy,
                                             name="drop_connect")

    def call(self, x, training: bool | None = None):
        # x: (B, H, W, C)
        y = x
        if self.expand is not None:
            y = self.expand(y, training=training)  # (B, H, W, C * expand_ratio)
        y = self.depthwise(y)  # (B, H/s, W/s, C * expand_ratio)
        y = self.depthwise_bn(y, training=training)
        y = self.depthwise_act(y)
        y = self.project(y, training=training)  # (B, H/s, W/s, filters), linear
        if self.residual:
            if self.drop is not None:
                y = self.drop(y, training=training)
            y = keras.ops.add(y, x)  # (B, H, W, filters)
        return y  # (B, H/s, W/s, filters)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        b, h, w, _ = input_shape
        return (b, _same_padding_size(h, self.strides), _same_padding_size(w, self.strides), self.filters)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            expand_ratio=self.expand_ratio,
            activation=self.activation,
            drop_rate=self.drop_rate,
        )
        return config
