"""`keras.applications` networks as backbones (`--backbone keras:NAME`).

The network is built without its top, with global average pooling, so it maps
`(B, H, W, 3)` images (in the range its registry entry gives) to `(B, features)`. Weights come from
a local `.weights.h5` file (of the same network without top), `imagenet` (downloaded by Keras, so it
needs internet or a pre-filled `~/.keras/models`), or `random`.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from sensorium.models.backbones.hub import HubModuleError
from sensorium.models.backbones.registry import KERAS_BACKBONES

BACKBONE_LAYER = "backbone"
# Keras' messages when a weights file only partly fits the network
_PARTIAL_LOAD_SIGNS = ("Skipping", "freshly-initialized", "did not match", "mismatch")


def build_keras_backbone(name: str, image_size: tuple[int, int], weights: str | None = "imagenet"):
    """`keras.applications.NAME(include_top=False, pooling="avg")` named "backbone":
    (B, H, W, 3) -> (B, features)."""
    import keras

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
