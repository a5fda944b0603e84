"""`--format hub-module`: our trained feature extractor as a reusable TF2 SavedModel.

The module follows the reusable SavedModel convention that `tensorflow_hub.load` and our
`HubBackbone` accept: `__call__(images, training)` with images float32 (B, H, W, 3) in [0, 1] (the TF
Hub image convention), returning (B, features); plus `variables`, `trainable_variables` and
`regularization_losses`. `assets/sensorium.json` records the input size and value range.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sensorium.runtime.atomic import atomic_path
from sensorium.runtime.errors import ModelError


def feature_extractor(model: Any) -> Any:
    """The classifier's layers up to its head, without training-time augmentation, then global
    average pooling: uint8 pixels (B, h, w, 3) -> (B, features). Weights are shared with `model`."""
    import keras

    from sensorium.models.blocks import ClassifierHead, ImageAugmentation

    layers = model.layers[1:]
    if not any(isinstance(layer, ClassifierHead) for layer in layers):
        raise ModelError("hub-module export needs an image classifier with a ClassifierHead")
    inputs = keras.Input(tuple(model.inputs[0].shape[1:]), dtype=model.inputs[0].dtype, name="pixels")
    x = inputs
    for layer in layers:  # our image classifiers are a chain: preprocessing, [augmentation], stem, stages, head
        if isinstance(layer, ClassifierHead):
            break
        if not isinstance(layer, ImageAugmentation):
            x = layer(x)  # (B, h', w', C)
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="features")(x)  # (B, C)
    return keras.Model(inputs, x, name="feature_extractor")


def write_hub_module(model: Any, out: Path, *, image_size: tuple[int, int], meta: dict[str, Any]) -> Path:
    """Write the feature extractor of `model` as a reusable SavedModel folder at `out`, atomically."""
    import tensorflow as tf

    extractor = feature_extractor(model)
    height, width = int(image_size[0]), int(image_size[1])

    @tf.function(input_signature=[tf.TensorSpec((None, height, width, 3), tf.float32), tf.TensorSpec((), tf.bool)])
    def call(images, training=False):
        pixels = tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0), tf.uint8)
        return tf.cond(training, lambda: extractor(pixels, training=True), lambda: extractor(pixels, training=False))

    module = tf.__internal__.tracking.AutoTrackable()
    module.__call__ = call
    module.extractor = extractor  # tracks every variable the graph captures
    module.variables = [w.value for w in extractor.weights]
    module.trainable_variables = [w.value for w in extractor.trainable_weights]
    module.regularization_losses = []
    with atomic_path(out) as tmp:
        tf.saved_model.save(module, str(tmp))
        (tmp / "assets").mkdir(exist_ok=True)
        info = {**meta, "format": "hub-module", "input": {"dtype": "float32", "shape": [None, height, width, 3],
                                                          "value_range": [0.0, 1.0], "image_size": [height, width]},
                "output": {"shape": [None, int(extractor.output.shape[-1])], "meaning": "feature vector"}}
        (tmp / "assets" / "sensorium.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out
