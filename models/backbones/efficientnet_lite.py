"""EfficientNet-Lite0/1/2 as Keras 3 networks of our blocks, and the mapping of their PyTorch checkpoints.

EfficientNet-Lite (Google, 2020) is EfficientNet made for TFLite: ReLU6 instead of swish, no
squeeze-excite, and a fixed stem (32) and head (1280). The network here is

    images (B, H, W, 3) float32 in `input_range` (default [0, 1], the TF Hub image convention)
    -> "to_model_range": (pixel - 127) / 128, the range the checkpoints were trained on (MODEL_RANGE)
    -> "stem": 3x3/2 ConvBNAct(32, relu6)
    -> "stage{s}_block{b}": InvertedResidual blocks, seven stages (BASE_STAGES, scaled per variant)
    -> "head_conv": 1x1 ConvBNAct(1280, relu6) -> "pool": global average pooling -> (B, 1280)

`load_torch_state_dict` copies a state dict of the common PyTorch implementation (`_conv_stem`,
`_bn0`, `_blocks.N._expand_conv` / `_depthwise_conv` / `_project_conv` with `_bn0/1/2`, `_conv_head`,
`_bn1`, `_fc`) into it, checking every tensor's name and shape first, and returns the ImageNet
classifier's `_fc` weights, which `imagenet_classifier` puts on top of the network.

    spec = EFFICIENTNET_LITE["efficientnet_lite0"]
    network = build_efficientnet_lite(spec)                       # (B, 224, 224, 3) [0, 1] -> (B, 1280)
    kernel, bias = load_torch_state_dict(network, spec, state)    # state: {name: np.ndarray}
    classifier = imagenet_classifier(network, kernel, bias)       # -> (B, 1000) probabilities
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import keras
import numpy as np

from sensorium.models.blocks.conv import ConvBNAct, InvertedResidual
from sensorium.runtime.errors import ModelError

MODEL_RANGE = (-1.0, 1.0)  # what the checkpoints expect: (pixel - 127) / 128 for pixels 0..255
PIXEL_MEAN, PIXEL_STD = 127.0, 128.0


class Stage(NamedTuple):
    """One stage of MBConv blocks: the first block has `strides`, the others 1."""

    repeats: int
    kernel: int
    strides: int
    expand: int
    filters: int


# EfficientNet-B0's stages, which Lite0 keeps: (repeats, kernel, stride, expand ratio, filters)
BASE_STAGES: tuple[Stage, ...] = (
    Stage(1, 3, 1, 1, 16), Stage(2, 3, 2, 6, 24), Stage(2, 5, 2, 6, 40), Stage(3, 3, 2, 6, 80),
    Stage(3, 5, 1, 6, 112), Stage(4, 5, 2, 6, 192), Stage(1, 3, 1, 6, 320),
)


@dataclass(frozen=True)
class EfficientNetLiteSpec:
    """The architecture of one variant (stages already scaled)."""

    name: str
    image_size: int  # the resolution it was trained at
    stages: tuple[Stage, ...]
    stem: int = 32
    head: int = 1280
    classes: int = 1000  # the checkpoint's classifier (`_fc`)

    @property
    def blocks(self) -> int:
        return sum(stage.repeats for stage in self.stages)


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's width scaling: `filters * width` to a multiple of `divisor`, never 10% below it."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """EfficientNet's depth scaling: ceil(repeats * depth)."""
    return int(math.ceil(repeats * depth))


def lite_spec(name: str, image_size: int, width: float, depth: float) -> EfficientNetLiteSpec:
    """A Lite variant: BASE_STAGES scaled by `width` and `depth`, except that Lite keeps the stem (32),
    the head (1280) and the repeats of the first and last stage fixed."""
    last = len(BASE_STAGES) - 1
    stages = tuple(stage._replace(repeats=stage.repeats if i in (0, last) else round_repeats(stage.repeats, depth),
                                  filters=round_filters(stage.filters, width))
                   for i, stage in enumerate(BASE_STAGES))
    return EfficientNetLiteSpec(name, image_size, stages)


# Checked against the real checkpoints: Lite1 has 1,3,3,4,4,5,1 blocks per stage with Lite0's widths;
# Lite2 the same repeats with widths 16,24,48,88,120,208,352.
EFFICIENTNET_LITE: dict[str, EfficientNetLiteSpec] = {
    "efficientnet_lite0": lite_spec("efficientnet_lite0", 224, 1.0, 1.0),
    "efficientnet_lite1": lite_spec("efficientnet_lite1", 240, 1.0, 1.1),
    "efficientnet_lite2": lite_spec("efficientnet_lite2", 260, 1.1, 1.2),
}


class Block(NamedTuple):
    """One MBConv block: its index in the checkpoint (`_blocks.N`), Keras layer name and settings."""

    index: int
    name: str
    kernel: int
    strides: int
    expand: int
    filters: int
    in_channels: int


def iter_blocks(spec: EfficientNetLiteSpec) -> Iterator[Block]:
    """The blocks in order: stage s (1-based), block b of it -> "stage{s}_block{b}", `_blocks.{index}`."""
    index, channels = 0, spec.stem
    for s, stage in enumerate(spec.stages, start=1):
        for b in range(stage.repeats):
            yield Block(index, f"stage{s}_block{b + 1}", stage.kernel, stage.strides if b == 0 else 1,
                        stage.expand, stage.filters, channels)
            index, channels = index + 1, stage.filters


def _input_rescaling(input_range: tuple[float, float]) -> tuple[float, float]:
    """(scale, offset) taking `input_range` to (pixel - 127) / 128, where the range's ends are pixels 0 and 255."""
    low, high = (float(v) for v in input_range)
    if high <= low:
        raise ValueError(f"input_range must be (low, high) with low < high, got {input_range}")
    scale = 255.0 / (PIXEL_STD * (high - low))
    return scale, -low * scale - PIXEL_MEAN / PIXEL_STD


def build_efficientnet_lite(spec: EfficientNetLiteSpec | str, *, image_size: int | tuple[int, int] | None = None,
                            input_range: tuple[float, float] = (0.0, 1.0), drop_connect_rate: float = 0.0,
                            name: str | None = None) -> keras.Model:
    """The feature extractor: images (B, H, W, 3) float32 in `input_range` -> features (B, spec.head).

    `image_size` defaults to the variant's own; `drop_connect_rate` is the stochastic depth of the last
    block (earlier blocks get proportionally less), active only in training mode."""
    spec = EFFICIENTNET_LITE[spec] if isinstance(spec, str) else spec
    size = image_size or spec.image_size
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    images = keras.Input((height, width, 3), dtype="float32", name="images")  # (B, H, W, 3) in input_range
    scale, offset = _input_rescaling(input_range)
    x = keras.layers.Rescaling(scale, offset=offset, name="to_model_range")(images)  # (B, H, W, 3) ~[-1, 1]
    x = ConvBNAct(spec.stem, 3, strides=2, activation="relu6", name="stem")(x)  # (B, H/2, W/2, 32)
    for block in iter_blocks(spec):
        x = InvertedResidual(block.filters, block.kernel, block.strides, block.expand, activation="relu6",
                             drop_rate=drop_connect_rate * block.index / spec.blocks,
                             name=block.name)(x)  # (B, H/s, W/s, filters); H/32 after the last stride
    x = ConvBNAct(spec.head, 1, activation="relu6", name="head_conv")(x)  # (B, H/32, W/32, 1280)
    features = keras.layers.GlobalAveragePooling2D(name="pool")(x)  # (B, 1280)
    return keras.Model(images, features, name=name or spec.name)


# === PyTorch state dict ===
_BN = ("weight", "bias", "running_mean", "running_var")
_OPTIONAL = "num_batches_tracked"  # written by torch >= 0.4.1; a training counter, not a weight


def _bn_shapes(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{field}": (channels,) for field in _BN}


def torch_tensor_shapes(spec: EfficientNetLiteSpec) -> dict[str, tuple[int, ...]]:
    """Every tensor a state dict of `spec` must hold, with its shape (`*.num_batches_tracked` may be added)."""
    shapes: dict[str, tuple[int, ...]] = {"_conv_stem.weight": (spec.stem, 3, 3, 3), **_bn_shapes("_bn0", spec.stem)}
    for block in iter_blocks(spec):
        prefix = f"_blocks.{block.index}"
        hidden = block.in_channels * block.expand
        if block.expand > 1:
            shapes[f"{prefix}._expand_conv.weight"] = (hidden, block.in_channels, 1, 1)
            shapes.update(_bn_shapes(f"{prefix}._bn0", hidden))
        shapes[f"{prefix}._depthwise_conv.weight"] = (hidden, 1, block.kernel, block.kernel)
        shapes.update(_bn_shapes(f"{prefix}._bn1", hidden))
        shapes[f"{prefix}._project_conv.weight"] = (block.filters, hidden, 1, 1)
        shapes.update(_bn_shapes(f"{prefix}._bn2", block.filters))
    last = spec.stages[-1].filters
    shapes["_conv_head.weight"] = (spec.head, last, 1, 1)
    shapes.update(_bn_shapes("_bn1", spec.head))
    shapes["_fc.weight"] = (spec.classes, spec.head)
    shapes["_fc.bias"] = (spec.classes,)
    return shapes


def check_state_dict(spec: EfficientNetLiteSpec, state: Mapping[str, np.ndarray], label: str = "checkpoint") -> None:
    """One-line ModelError naming the first unexpected, missing, mis-shaped or non-finite tensor."""
    expected = torch_tensor_shapes(spec)
    bn_prefixes = {name.rsplit(".", 1)[0] for name in expected if name.endswith(".running_var")}
    for name, value in state.items():
        shape = tuple(np.shape(value))
        prefix, _, field = name.rpartition(".")
        if field == _OPTIONAL and prefix in bn_prefixes:
            if shape != ():
                raise ModelError(f"{label}: tensor {name} has shape {shape}, expected () for {spec.name}")
            continue
        if name not in expected:
            raise ModelError(f"{label}: unexpected tensor {name} {shape} (not part of {spec.name})")
        if shape != expected[name]:
            raise ModelError(f"{label}: tensor {name} has shape {shape}, expected {expected[name]} for {spec.name}")
        array = np.asarray(value)
        if not np.issubdtype(array.dtype, np.floating) or not np.all(np.isfinite(array)):
            raise ModelError(f"{label}: tensor {name} is not finite floating point ({array.dtype})")
    missing = [name for name in expected if name not in state]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ModelError(f"{label}: missing tensor {missing[0]}{more} (a {spec.name} checkpoint has "
                         f"{len(expected)} tensors)")


def _conv_kernel(weight: np.ndarray) -> np.ndarray:
    """torch conv (out, in, kh, kw) -> Keras (kh, kw, in, out)."""
    return np.transpose(weight, (2, 3, 1, 0))


def _depthwise_kernel(weight: np.ndarray) -> np.ndarray:
    """torch depthwise (C, 1, kh, kw) -> Keras (kh, kw, C, 1)."""
    return np.transpose(weight, (2, 3, 0, 1))


def load_torch_state_dict(network: keras.Model, spec: EfficientNetLiteSpec, state: Mapping[str, np.ndarray],
                          label: str = "checkpoint") -> tuple[np.ndarray, np.ndarray]:
    """Copy the PyTorch state dict `state` into `network` (built by `build_efficientnet_lite(spec)`).

    Every tensor is checked first (`check_state_dict`), so nothing is copied from a bad checkpoint.
    Returns the ImageNet classifier: kernel (head, classes) and bias (classes,), float32."""
    check_state_dict(spec, state, label)
    t = {name: np.asarray(value, dtype=np.float32) for name, value in state.items()}
    assigned: list[Any] = []

    def bn(layer: Any, prefix: str) -> None:
        layer.set_weights([t[f"{prefix}.{field}"] for field in _BN])  # gamma, beta, moving mean, moving variance
        assigned.extend(layer.weights)

    def conv(layer: ConvBNAct, weight: str, bn_prefix: str) -> None:
        layer.conv.kernel.assign(_conv_kernel(t[weight]))
        assigned.append(layer.conv.kernel)
        bn(layer.bn, bn_prefix)

    conv(network.get_layer("stem"), "_conv_stem.weight", "_bn0")
    for block in iter_blocks(spec):
        layer = network.get_layer(block.name)
        prefix = f"_blocks.{block.index}"
        if layer.expand is not None:
            conv(layer.expand, f"{prefix}._expand_conv.weight", f"{prefix}._bn0")
        layer.depthwise.kernel.assign(_depthwise_kernel(t[f"{prefix}._depthwise_conv.weight"]))
        assigned.append(layer.depthwise.kernel)
        bn(layer.depthwise_bn, f"{prefix}._bn1")
        conv(layer.project, f"{prefix}._project_conv.weight", f"{prefix}._bn2")
    conv(network.get_layer("head_conv"), "_conv_head.weight", "_bn1")
    left = {id(w) for w in network.weights} - {id(w) for w in assigned}
    if left:  # the network is not the one `spec` describes
        raise ModelError(f"{label}: the network {network.name} has {len(left)} weight(s) that {spec.name}'s "
                         "checkpoint does not fill (build it with build_efficientnet_lite(spec))")
    return np.ascontiguousarray(t["_fc.weight"].T), t["_fc.bias"]


def imagenet_classifier(network: keras.Model, kernel: np.ndarray, bias: np.ndarray,
                        name: str | None = None) -> keras.Model:
    """`network` (sharing its layers) + the checkpoint's classifier: images -> (B, classes) probabilities."""
    kernel = np.asarray(kernel, dtype=np.float32)
    if kernel.ndim != 2 or kernel.shape[0] != network.output.shape[-1] or np.shape(bias) != (kernel.shape[1],):
        raise ModelError(f"classifier weights {kernel.shape} / {np.shape(bias)} do not fit features of "
                         f"{network.output.shape[-1]}")
    dense = keras.layers.Dense(kernel.shape[1], name="logits")
    logits = dense(network.output)  # (B, classes)
    dense.set_weights([kernel, np.asarray(bias, dtype=np.float32)])
    probabilities = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)  # (B, classes)
    return keras.Model(network.input, probabilities, name=name or f"{network.name}_imagenet")
