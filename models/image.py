"""Small image classifiers (ResNet / MobileNet-like / plain CNN) that take raw RGB uint8 pixels.

The built model is end to end: ``pixels (B, h, w, 3) uint8`` of any size ->
``probabilities (B, num_classes) float32``. Preprocessing (resize, grayscale, scale) lives in the
model, augmentation too (identity at inference), and a ``TaskMetadata`` layer records the task,
labels and input settings, so the ``.keras`` file and its TFLite export are self-contained.

Example::

    spec = ImageClassifierSpec()              # MNIST: 28x28 grayscale ResNet (32, 64, 128)
    model = build_image_classifier(spec, num_classes=10, labels=[str(d) for d in range(10)])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras

from sensorium.models.backbones.hub import HubModuleError
from sensorium.models.backbones.keras_apps import build_hub_backbone, build_keras_backbone
from sensorium.models.backbones.registry import BackboneInfo, describe_backbone, parse_backbone
from sensorium.models.blocks.conv import ConvBNAct, DepthwiseSeparableConv, ResidualBlock
from sensorium.models.blocks.heads import ClassifierHead
from sensorium.models.blocks.image_preprocessing import ContentFraming, ImageAugmentation, ImagePreprocessing
from sensorium.models.blocks.metadata import TaskMetadata
from sensorium.runtime.image import ImageClassifier
from sensorium.runtime.registry import Registry


@dataclass
class ImageClassifierSpec:
    """Architecture settings of an image classifier (no training settings)."""

    image_size: tuple[int, int] | None = None  # None: the backbone's input size, else 28x28
    channels: int = 1  # 1 = grayscale model, 3 = RGB (a backbone always gets RGB)
    padding: int = 0  # black frame in pixels around the resized image (MNIST framing: 4 at 28x28)
    architecture: str = "resnet"  # registry name: "resnet" | "separable" | "simple"
    widths: tuple[int, ...] = (32, 64, 128)  # one stage per width, stride 2 between stages
    blocks_per_stage: int = 1
    se_ratio: float | None = None
    head_units: tuple[int, ...] = ()
    dropout: float = 0.2
    augmentation: dict = field(default_factory=dict)  # kwargs for ImageAugmentation; empty -> no augmentation
    framing: dict = field(default_factory=dict)  # kwargs for ContentFraming (MNIST-style re-framing); empty -> off
    backbone: str | None = None  # "hub:NAME_OR_HANDLE" or "keras:NAME" instead of our own stages
    backbone_weights: str | None = None  # keras backbones: "imagenet" (default), a .weights.h5 file, "random"
    backbone_batchnorm_training: bool = False  # update the backbone's batch-norm statistics when fine-tuning


DEFAULT_IMAGE_SIZE = (28, 28)
MIN_BACKBONE_SIDE = 32  # px: a pretrained backbone is not given images smaller than this (upscaled 7x to 224)


def resolve_image_size(spec: ImageClassifierSpec) -> tuple[int, int]:
    """The model input size: the spec's, else the backbone's (registry, module metadata or signature)."""
    if spec.image_size:
        return int(spec.image_size[0]), int(spec.image_size[1])
    if not spec.backbone:
        return DEFAULT_IMAGE_SIZE
    info = describe_backbone(spec.backbone)
    if info.image_size is None:
        raise HubModuleError(f"backbone {spec.backbone} accepts any input size and has no registered one; "
                             "set --image-size")
    return info.image_size


# A stage builder adds one stage to a functional graph:
# (x, width, strides, spec, name) -> x, where strides is 1 for the first stage and 2 after.
StageBuilder = Callable[[keras.KerasTensor, int, int, ImageClassifierSpec, str], keras.KerasTensor]


class ArchitectureRegistry(Registry[StageBuilder]):
    """Name -> stage builder. ``register`` is usable as a decorator."""

    def __init__(self) -> None:
        super().__init__("architecture", ValueError)


ARCHITECTURES = ArchitectureRegistry()


@ARCHITECTURES.register("resnet")
def _resnet_stage(x, width: int, strides: int, spec: ImageClassifierSpec, name: str):
    """ResidualBlocks; the first one strides (projection shortcut) when the stage downsamples."""
    for b in range(spec.blocks_per_stage):
        x = ResidualBlock(
            width, strides=strides if b == 0 else 1, se_ratio=spec.se_ratio, name=f"{name}_block{b + 1}"
        )(x)  # (B, H/s, W/s, width)
    return x


@ARCHITECTURES.register("separable")
def _separable_stage(x, width: int, strides: int, spec: ImageClassifierSpec, name: str):
    """MobileNet-like: depthwise-separable convolutions, the first one strided."""
    for b in range(spec.blocks_per_stage):
        x = DepthwiseSeparableConv(
            width, strides=strides if b == 0 else 1, se_ratio=spec.se_ratio, name=f"{name}_block{b + 1}"
        )(x)  # (B, H/s, W/s, width)
    return x


@ARCHITECTURES.register("simple")
def _simple_stage(x, width: int, strides: int, spec: ImageClassifierSpec, name: str):
    """Plain CNN: 2x2 max-pool when the stage downsamples, then 3x3 ConvBNAct blocks."""
    if strides > 1:
        x = keras.layers.MaxPooling2D(strides, padding="same", name=f"{name}_pool")(x)  # (B, H/2, W/2, C)
    for b in range(spec.blocks_per_stage):
        x = ConvBNAct(width, 3, name=f"{name}_block{b + 1}")(x)  # (B, H, W, width)
    return x


def build_image_classifier(
    spec: ImageClassifierSpec,
    num_classes: int,
    labels: list[str] | None = None,
    name: str = "image_classifier",
    pretrained: bool = True,
) -> keras.Model:
    """Build ``pixels (B, h, w, 3) uint8 -> probabilities (B, num_classes) float32``.

    Graph: ImagePreprocessing -> [ContentFraming] -> [ImageAugmentation] -> stem ConvBNAct -> one stage per
    ``spec.widths`` entry (stride 2 between stages) -> ClassifierHead -> TaskMetadata; with a
    backbone: ImagePreprocessing (RGB, [0, 1]) -> [ImageAugmentation] -> the backbone's value range
    -> backbone layer "backbone" -> ClassifierHead -> TaskMetadata.
    Augmentation follows preprocessing so it works on fixed-size float images.
    ``pretrained=False`` builds a keras.applications backbone, or the network of one of our own hub
    modules, without loading weights (for a copy that receives trained weights). The output tensor
    is named "probabilities".
    """
    stage_builder = ARCHITECTURES.get(spec.architecture)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if labels is not None and len(labels) != num_classes:
        raise ValueError(f"got {len(labels)} labels for {num_classes} classes")
    if not spec.widths:
        raise ValueError("spec.widths must name at least one stage")
    if spec.blocks_per_stage < 1:
        raise ValueError(f"blocks_per_stage must be >= 1, got {spec.blocks_per_stage}")
    image_size = resolve_image_size(spec)

    pixels = keras.Input((None, None, 3), dtype="uint8", name="pixels")  # (B, h, w, 3) uint8
    channels = 3 if spec.backbone else spec.channels  # pretrained backbones take RGB
    x = ImagePreprocessing(image_size, channels=channels, padding=spec.padding,
                           name="preprocessing")(pixels)  # (B, H, W, ch) float32 in [0, 1]
    if spec.framing:
        x = ContentFraming(**spec.framing, name="framing")(x)  # (B, H, W, ch): content scaled and centred
    if spec.augmentation:
        x = ImageAugmentation(**spec.augmentation, name="augmentation")(x)  # (B, H, W, ch), identity at inference
    if spec.backbone:
        source, handle = parse_backbone(spec.backbone)
        info = describe_backbone(spec.backbone)
        x = _to_backbone_range(x, info)  # (B, H, W, 3) in the backbone's range
        if source == "hub":  # our own exported module: its Keras network; any other: the pinned module
            x = build_hub_backbone(info.handle, batchnorm_training=spec.backbone_batchnorm_training,
                                   pretrained=pretrained)(x)  # (B, features)
        else:
            weights = (spec.backbone_weights or "imagenet") if pretrained else None
            x = build_keras_backbone(handle, image_size, weights)(x)  # (B, features)
    else:
        x = ConvBNAct(spec.widths[0], 3, name="stem")(x)  # (B, H, W, widths[0])
        for i, width in enumerate(spec.widths):
            x = stage_builder(x, int(width), 1 if i == 0 else 2, spec, f"stage{i + 1}")  # (B, H/2^i, W/2^i, width)
    x = ClassifierHead(
        num_classes, hidden_units=spec.head_units, dropout=spec.dropout, name="head"
    )(x)  # (B, num_classes) float32
    info_meta: dict[str, Any] = {
        "image_size": list(image_size),
        "channels": channels,
        "architecture": spec.backbone or spec.architecture,
        "input": "uint8 RGB pixels (B, h, w, 3), any size",
    }
    if spec.padding:
        info_meta["padding"] = spec.padding
    if spec.framing:
        info_meta["framing"] = dict(spec.framing)
    if spec.backbone:
        info_meta["min_side"] = MIN_BACKBONE_SIDE  # smaller inputs are refused, item by item
    outputs = TaskMetadata(task=ImageClassifier.task, labels=labels, info=info_meta, name="probabilities")(x)
    return keras.Model(pixels, outputs, name=name)


def _to_backbone_range(x, info: BackboneInfo):
    """[0, 1] images -> the backbone's value range, then its per-channel mean/std if it has them."""
    low, high = info.value_range
    if (low, high) != (0.0, 1.0):
        x = keras.layers.Rescaling(high - low, offset=low, name="backbone_range")(x)  # (B, H, W, 3)
    if info.mean is not None:
        std = info.std or (1.0,) * len(info.mean)
        x = keras.layers.Normalization(mean=list(info.mean), variance=[s * s for s in std],
                                       name="backbone_normalization")(x)  # (B, H, W, 3)
    return x
