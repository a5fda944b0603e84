"""`--format hub-module`: our trained feature extractor as a reusable TF2 SavedModel.

The module follows the reusable SavedModel convention that `tensorflow_hub.load` and our
`HubBackbone` accept: `__call__(images, training)` with images float32 (B, H, W, 3) in [0, 1] (the TF
Hub image convention), returning (B, features); plus `variables`, `trainable_variables` and
`regularization_losses`. `assets/sensorium.json` records the input size and value range, and (under
`keras.network`) the same function as a Keras network of our blocks, whose weights are the module's
`variables` in order: `--backbone hub:MODULE` rebuilds it, so the trained `.keras` carries the backbone
and loads without the module folder (a module whose extractor wraps another hub module has none).
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


def backbone_network(extractor: Any, image_size: tuple[int, int]) -> Any | None:
    """The module's `__call__` as a Keras network that shares the extractor's layers, and so its
    weights in the same order: images float32 (B, H, W, 3) in [0, 1] -> 0..255 -> the extractor's
    layers -> (B, features). None when a layer wraps a hub module (its graph is no Keras config)."""
    import keras

    from sensorium.models.backbones.hub import HubBackbone

    if any(isinstance(layer, HubBackbone) for layer in extractor._flatten_layers(include_self=False)):
        return None
    images = keras.Input((int(image_size[0]), int(image_size[1]), 3), dtype="float32", name="images")
    x = keras.layers.Rescaling(255.0, name="to_pixels")(images)  # (B, H, W, 3) 0..255, as the pixels it takes
    for layer in extractor.layers[1:]:  # the chain `feature_extractor` built
        x = layer(x)
    return keras.Model(images, x, name="network")


def write_hub_module(model: Any, out: Path, *, image_size: tuple[int, int], meta: dict[str, Any]) -> Path:
    """Write the feature extractor of `model` as a reusable SavedModel folder at `out`, atomically."""
    import keras
    import tensorflow as tf

    extractor = feature_extractor(model)
    height, width = int(image_size[0]), int(image_size[1])
    network = backbone_network(extractor, (height, width))

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
        if network is not None:
            info["keras"] = {"network": keras.saving.serialize_keras_object(network)}
        (tmp / "assets" / "sensorium.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out
