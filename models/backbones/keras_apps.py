"""Keras networks as backbones: `keras.applications` (`--backbone keras:NAME`) and networks that travel
with their weights inside the `.keras` file (`EmbeddedBackbone`).

A keras.applications network is built without its top, with global average pooling, so it maps
`(B, H, W, 3)` images (in the range its registry entry gives) to `(B, features)`. Weights come from
a local `.weights.h5` file (of the same network without top), `imagenet` (downloaded by Keras, so it
needs internet or a pre-filled `~/.keras/models`), or `random`.

`build_hub_backbone` serves `--backbone hub:HANDLE`: a module written by `sensorium export --format
hub-module` carries its Keras network (`assets/sensorium.json`), so it becomes an `EmbeddedBackbone` of
our own blocks with the module's weights, and the trained `.keras` needs no module folder to load;
any other module is wrapped as a hash-pinned `HubBackbone`. Packaged pretrained networks built from our
blocks fit the same layer: `write_network_module` writes such a network as a module of that kind (what
`sensorium data backbones` does for EfficientNet-Lite).
"""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import keras

from sensorium.models.backbones.hub import HubBackbone, HubModuleError, load_module_at, module_variables, resolve_local
from sensorium.models.backbones.registry import KERAS_BACKBONES

BACKBONE_LAYER = "backbone"
# Keras' messages when a weights file only partly fits the network
_PARTIAL_LOAD_SIGNS = ("Skipping", "freshly-initialized", "did not match", "mismatch")


def build_keras_backbone(name: str, image_size: tuple[int, int], weights: str | None = "imagenet"):
    """`keras.applications.NAME(include_top=False, pooling="avg")` named "backbone":
    (B, H, W, 3) -> (B, features)."""
    info = KERAS_BACKBONES.get(name)
    height, width = int(image_size[0]), int(image_size[1])
    if min(height, width) < info.min_size:
        raise HubModuleError(f"keras:{name} needs images of at least {info.min_size}x{info.min_size}, "
                             f"got {height}x{width} (set --image-size)")
    source = None if weights in (None, "random") else weights
    if source not in (None, "imagenet"):
        path = Path(source).expanduser()
        if not path.is_file():
            raise HubModuleError(f"keras:{name} weights file not found: {path} (expected a .weights.h5 file of "
                                 f"keras.applications.{name}(include_top=False), or 'imagenet' / 'random')")
        source = str(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            network = getattr(keras.applications, info.handle)(include_top=False, weights=source,
                                                               input_shape=(height, width, 3), pooling="avg")
        partial = [w for w in caught if any(k in str(w.message) for k in _PARTIAL_LOAD_SIGNS)]
        if partial:  # Keras loads a mismatched file partly and only warns: a silent random backbone
            raise ValueError(f"the weights file does not match this network ({len(partial)} part(s) skipped: "
                             f"{str(partial[0].message).split(':')[0]})")
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    except Exception as exc:  # download failure offline, a weights file of another network, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        if source == "imagenet":
            raise HubModuleError(f"cannot build keras:{name} with imagenet weights: {first} (no internet? download "
                                 "the weights once or pass --backbone-weights FILE)") from None
        raise HubModuleError(f"keras:{name} cannot use weights file {source}: {first}") from None
    network.name = BACKBONE_LAYER
    return network


@keras.saving.register_keras_serializable(package="sensorium")
class EmbeddedBackbone(keras.layers.Layer):
    """A Keras network (e.g. our own blocks) as the backbone layer: `(B, H, W, 3) -> (B, features)`.

    Its architecture is part of the layer's config and its weights are saved with the model, so a
    `.keras` file holding it loads with nothing but the file. Fine-tuning follows `HubBackbone`: when
    trainable, only weights whose path matches `trainable_pattern` train, and the network runs in
    inference mode (batch-norm statistics frozen) unless `batchnorm_training`. Both settings are in
    the config, so a resumed run trains exactly what it trained before.

    Args:
        network: the Keras model.
        trainable_pattern: regex over weight paths (None: all weights).
        batchnorm_training: run the network in training mode while training (updates batch-norm statistics).
        origin: where the network came from (informational: the module handle it was built from).
    """

    def __init__(self, network: Any, trainable_pattern: str | None = None, batchnorm_training: bool = False,
                 origin: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.network = network
        self.batchnorm_training = bool(batchnorm_training)
        self.origin = origin
        self.set_trainable_pattern(trainable_pattern)
        self.built = True

    def set_trainable_pattern(self, pattern: str | None) -> None:
        """Make trainable the network's weights whose path matches `pattern` (None: all); a frozen layer
        (`trainable=False`, also as restored from a .keras file) keeps them all frozen. Keras' own
        `trainable` setter resets the weights: call this after it."""
        regex = re.compile(pattern) if pattern else None
        self.trainable_pattern = pattern
        for layer in self.network._flatten_layers(include_self=True):
            # the setter itself on every layer: `layer.trainable = x` is a no-op when the flag already is x
            # (TensorFlow's `self.a = self.a` short cut), which leaves the sublayers of a block restored
            # frozen from a config trainable
            keras.layers.Layer.trainable.fset(layer, self.trainable)
        if not self.trainable:
            return
        for weight in self.network.trainable_weights:
            weight.trainable = regex is None or bool(regex.search(weight.path))

    def call(self, inputs, training: bool | None = None):
        use_training = bool(training) and self.batchnorm_training and self.trainable
        return self.network(inputs, training=use_training)  # (B, H, W, 3) -> (B, features)

    def compute_output_spec(self, inputs):
        return self.network.compute_output_spec(inputs)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> EmbeddedBackbone:
        """Deserialise, the network with Keras' own deserialisation (in the safe mode of the load)."""
        config = dict(config)
        return cls(keras.saving.deserialize_keras_object(config.pop("network")), **config)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(network=keras.saving.serialize_keras_object(self.network), origin=self.origin,
                      trainable_pattern=self.trainable_pattern, batchnorm_training=self.batchnorm_training)
        return config


def build_hub_backbone(handle: str, *, batchnorm_training: bool = False, pretrained: bool = True) -> Any:
    """The backbone layer for `--backbone hub:HANDLE` (training time: the handle is resolved here).

    A module of ours (its `assets/sensorium.json` carries the Keras network) becomes an
    `EmbeddedBackbone` with the module's variables as weights (`pretrained=False`: left initialised,
    for a copy that receives trained weights); any other module a hash-pinned `HubBackbone`."""
    path = resolve_local(handle)
    config = module_network_config(path, handle)
    if config is None:
        return HubBackbone(handle, batchnorm_training=batchnorm_training, name=BACKBONE_LAYER)
    import sensorium.models.blocks  # noqa: F401  (registers the blocks the network is made of)

    try:
        network = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise HubModuleError(f"hub module '{handle}': cannot rebuild its Keras network ({first})") from None
    if pretrained:
        _copy_module_weights(network, load_module_at(path, handle), handle)
    return EmbeddedBackbone(network, batchnorm_training=batchnorm_training, origin=handle, name=BACKBONE_LAYER)


def module_network_config(path: Path, handle: str) -> dict[str, Any] | None:
    """The Keras network config that a module of ours records in `assets/sensorium.json`, else None."""
    meta_file = Path(path) / "assets" / "sensorium.json"
    if not meta_file.is_file():
        return None
    try:
        network = json.loads(meta_file.read_text(encoding="utf-8")).get("keras", {}).get("network")
    except (ValueError, AttributeError, OSError):
        raise HubModuleError(f"hub module '{handle}': unreadable assets/sensorium.json") from None
    return network if isinstance(network, dict) else None


def _copy_module_weights(network: Any, module: Any, handle: str) -> None:
    """Set `network`'s weights to the module's variables (the same list, in the same order)."""
    variables, _ = module_variables(module)
    shapes = [tuple(v.shape) for v in variables]
    if shapes != [tuple(w.shape) for w in network.weights]:
        raise HubModuleError(f"hub module '{handle}': its variables do not match the Keras network it records "
                             "(re-export the module)")
    network.set_weights([v.numpy() for v in variables])


def write_network_module(network: Any, out: str | Path, *, value_range: tuple[float, float] = (0.0, 1.0),
                         meta: dict[str, Any] | None = None) -> Path:
    """Write `network` (images (B, H, W, 3) float32 in `value_range` -> (B, features)) as a reusable TF2
    SavedModel folder at `out`, atomically: `__call__(images, training)`, `variables` (the network's
    weights, in order), `trainable_variables`, `regularization_losses`, and `assets/sensorium.json` with
    `meta`, the input size and range, and the network's Keras config under `keras.network`, so
    `build_hub_backbone` rebuilds it as an `EmbeddedBackbone` (a trained `.keras` needs no module folder)."""
    import tensorflow as tf

    from sensorium.runtime.atomic import atomic_path

    shape = tuple(network.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3 or None in shape[1:3] or len(network.outputs[0].shape) != 2:
        raise HubModuleError(f"a hub module needs a network (B, H, W, 3) -> (B, features) of a fixed size, got "
                             f"{shape} -> {tuple(network.outputs[0].shape)}")
    height, width = int(shape[1]), int(shape[2])

    @tf.function(input_signature=[tf.TensorSpec((None, height, width, 3), tf.float32), tf.TensorSpec((), tf.bool)])
    def call(images, training=False):
        # images: (B, H, W, 3) float32 in value_range -> (B, features)
        return tf.cond(training, lambda: network(images, training=True), lambda: network(images, training=False))

    module = tf.__internal__.tracking.AutoTrackable()
    module.__call__ = call
    # the lists track every variable the graph captures (tracking `network` too would save each one twice)
    module.variables = [w.value for w in network.weights]
    module.trainable_variables = [w.value for w in network.trainable_weights]
    module.regularization_losses = []
    info = {**(meta or {}), "format": "hub-module",
            "input": {"dtype": "float32", "shape": [None, height, width, 3], "image_size": [height, width],
                      "value_range": [float(value_range[0]), float(value_range[1])]},
            "output": {"shape": [None, int(network.outputs[0].shape[-1])], "meaning": "feature vector"},
            "keras": {"network": keras.saving.serialize_keras_object(network)}}
    out = Path(out)
    with atomic_path(out) as tmp:
        tf.saved_model.save(module, str(tmp))
        (tmp / "assets").mkdir(exist_ok=True)
        (tmp / "assets" / "sensorium.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out
