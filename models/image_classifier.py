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

from dataclasses import dataclass, field
from typing import Any, Callable

import keras

from sensorium.models.blocks.conv import ConvBNAct, DepthwiseSeparableConv, ResidualBlock
from sensorium.models.blocks.heads import ClassifierHead
from sensorium.models.blocks.image_preprocessing import ImageAugmentation, ImagePreprocessing
from sensorium.models.backbones.hub import HubBackbone
from sensorium.models.blocks.metadata import TaskMetadata
from sensorium.models.registry import Registry


@dataclass
class ImageClassifierSpec:
    """Architecture settings of an image classifier (no training settings)."""

    image_size: tuple[int, int] = (28, 28)
    channels: int = 1  # 1 = grayscale model, 3 = RGB
    architecture: str = "resnet"  # registry name: "resnet" | "separable" | "simple"
    widths: tuple[int, ...] = (32, 64, 128)  # one stage per width, stride 2 between stages
    blocks_per_stage: int = 1
    se_ratio: float | None = None
    head_units: tuple[int, ...] = ()
    dropout: float = 0.2
    augmentation: dict = field(default_factory=dict)  # kwargs for ImageAugmentation; empty -> no augmentation
    backbone: str | None = None  # "hub:HANDLE" (a reusable TF2 SavedModel) instead of our own stages


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
) -> keras.Model:
    """Build ``pixels (B, h, w, 3) uint8 -> probabilities (B, num_classes) float32``.

    Graph: ImagePreprocessing -> [ImageAugmentation] -> stem ConvBNAct -> one stage per
    ``spec.widths`` entry (stride 2 between stages) -> ClassifierHead -> TaskMetadata.
    Augmentation follows preprocessing so it works on fixed-size float images.
    The output tensor is named "probabilities" (the TaskMetadata identity layer carries that name).
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
    image_size = (int(spec.image_size[0]), int(spec.image_size[1]))

    pixels = keras.Input((None, None, 3), dtype="uint8", name="pixels")  # (B, h, w, 3) uint8
    channels = 3 if spec.backbone else spec.channels  # hub image modules take RGB in [0, 1]
    x = ImagePreprocessing(image_size, channels=channels, name="preprocessing")(pixels)  # (B, H, W, ch) f32
    if spec.augmentation:
        x = ImageAugmentation(**spec.augmentation, name="augmentation")(x)  # (B, H, W, ch), identity at inference
    if spec.backbone:
        kind, _, handle = spec.backbone.partition(":")
        if kind != "hub" or not handle:
            raise ValueError(f"backbone must be 'hub:HANDLE', got {spec.backbone!r}")
        x = HubBackbone(handle, name="backbone")(x)  # (B, features)
    else:
        x = ConvBNAct(spec.widths[0], 3, name="stem")(x)  # (B, H, W, widths[0])
        for i, width in enumerate(spec.widths):
            x = stage_builder(x, int(width), 1 if i == 0 else 2, spec, f"stage{i + 1}")  # (B, H/2^i, W/2^i, width)
    x = ClassifierHead(
        num_classes, hidden_units=spec.head_units, dropout=spec.dropout, name="head"
    )(x)  # (B, num_classes) float32
    info: dict[str, Any] = {
        "image_size": list(image_size),
        "channels": spec.channels,
        "architecture": spec.backbone or spec.architecture,
        "input": "uint8 RGB pixels (B, h, w, 3), any size",
    }
    outputs = TaskMetadata(task="image", labels=labels, info=info, name="probabilities")(x)
    return keras.Model(pixels, outputs, name=name)
