"""Task heads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras


@keras.saving.register_keras_serializable(package="sensorium")
class ClassifierHead(keras.layers.Layer):
    """Feature map or vector -> class probabilities.

    (B, H, W, C) is global-average-pooled to (B, C) first; (B, C) is used as is. Then, for each
    entry of ``hidden_units``: dropout -> Dense -> activation; finally dropout -> Dense
    (``logits``) -> softmax (``probabilities``). The softmax runs in float32 whatever the dtype
    policy, so the output is float32 under mixed precision too.
    """

    def __init__(
        self,
        num_classes: int,
        hidden_units: Sequence[int] = (),
        dropout: float = 0.0,
        activation: str = "relu",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.dropout = float(dropout)
        self.activation = activation
        policy = self.dtype_policy
        self.pool = keras.layers.GlobalAveragePooling2D(dtype=policy, name="pool")
        self.hidden = [
            keras.layers.Dense(units, activation=self.activation, dtype=policy, name=f"hidden{i}")
            for i, units in enumerate(self.hidden_units)
        ]
        self.drops = [
            keras.layers.Dropout(self.dropout, dtype=policy, name=f"dropout{i}")
            for i in range(len(self.hidden_units) + 1)
        ] if self.dropout > 0 else []
        self.logits = keras.layers.Dense(self.num_classes, dtype=policy, name="logits")
        self.probabilities = keras.layers.Activation("softmax", dtype="float32", name="probabilities")

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) not in (2, 4):
            raise ValueError(f"ClassifierHead expects (B, C) or (B, H, W, C) inputs, got {input_shape}")
        shape = (input_shape[0], input_shape[-1])  # (B, C)
        for dense in self.hidden:
            dense.build(shape)
            shape = (shape[0], dense.units)
        self.logits.build(shape)

    def call(self, x, training: bool | None = None):
        if len(x.shape) == 4:
            x = self.pool(x)  # (B, H, W, C) -> (B, C)
        for i, dense in enumerate(self.hidden):
            if self.drops:
                x = self.drops[i](x, training=training)
            x = dense(x)  # (B, hidden_units[i])
        if self.drops:
            x = self.drops[-1](x, training=training)
        x = self.logits(x)  # (B, num_classes), compute dtype
        return self.probabilities(x)  # (B, num_classes), float32, rows sum to 1

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.num_classes)

    def compute_output_spec(self, x, training: bool | None = None) -> keras.KerasTensor:
        # The default spec would use this layer's compute dtype; the softmax output is float32.
        return keras.KerasTensor(self.compute_output_shape(x.shape), dtype=self.probabilities.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            hidden_units=list(self.hidden_units),
            dropout=self.dropout,
            activation=self.activation,
        )
        return config
