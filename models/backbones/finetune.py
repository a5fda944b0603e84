"""Freezing and unfreezing a classifier's backbone (hub module, embedded network of our own blocks, or
keras.applications network).

Batch-norm layers stay frozen (inference mode: their moving statistics are not updated and their
scale/offset not trained) unless `batchnorm_training` is set: what fine-tuning on small data needs.
Keras 3 overrides a call-site `training=False` inside a functional model, so freezing the layers is the
way to keep a keras network's batch norms in inference mode.
"""
from __future__ import annotations

import re
from typing import Any

from sensorium.models.backbones.hub import HubBackbone
from sensorium.models.backbones.keras_apps import BACKBONE_LAYER, EmbeddedBackbone


def find_backbone(model: Any) -> Any | None:
    """The classifier's backbone layer, or None for a network of our own stages."""
    return next((layer for layer in model.layers if layer.name == BACKBONE_LAYER), None)


def set_backbone_trainable(backbone: Any, trainable: bool, pattern: str | None = None,
                           batchnorm_training: bool = False) -> int:
    """Freeze the backbone, or make trainable those of its variables (hub, embedded) / layers (keras) whose
    name matches `pattern` (None: all). Returns the number of trainable backbone weights."""
    import keras

    backbone.trainable = trainable
    if isinstance(backbone, (HubBackbone, EmbeddedBackbone)):
        backbone.set_trainable_pattern(pattern if trainable else None)
        return len(backbone.trainable_weights)
    regex = re.compile(pattern) if pattern else None
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = trainable and batchnorm_training and (regex is None or bool(regex.search(layer.name)))
        elif trainable:
            layer.trainable = regex is None or bool(regex.search(layer.name))
    return len(backbone.trainable_weights)
