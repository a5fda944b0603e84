"""Command-line options of `sensorium train|tune` for the image task's config.

Kept apart from the config dataclasses so `sensorium --help` builds every option without importing
TensorFlow.
"""
from __future__ import annotations

from sensorium.pipelines.common.flags import COMMON_TRAIN_FLAGS, Flag, int_list, int_pair

# `sensorium train|tune image` options (each sets one config key; see pipelines/common/flags.py)
FLAGS: tuple[Flag, ...] = COMMON_TRAIN_FLAGS + (
    Flag("--image-size", "model.image_size", int_pair, "model input size, N or HxW (default: the "
         "backbone's, else 28)", metavar="N|HxW"),
    Flag("--padding", "model.padding", int, "black frame in pixels around the resized image (MNIST-style "
         "framing, e.g. 4 at 28x28)", metavar="PIXELS"),
    Flag("--channels", "model.channels", int, "1 (grayscale model) or 3 (RGB)", choices=None),
    Flag("--architecture", "model.architecture", str, "CNN family", choices=("resnet", "separable", "simple")),
    Flag("--widths", "model.widths", int_list, "filters per stage, e.g. 32,64,128", metavar="W,W,..."),
    Flag("--backbone", "model.backbone", str, "auto (default: hub:efficientnet_lite0 for colour images of at "
         "least 32 px, else our CNN from scratch), none (from scratch), or a pretrained backbone: hub:NAME or "
         "hub:HANDLE (tfhub.dev/Kaggle "
         "URL, file:// URL or folder of a reusable TF2 SavedModel), or keras:NAME (keras.applications); "
         "hub:efficientnet_lite0|1|2 are ImageNet backbones that `sensorium data backbones` sets up offline; the "
         "README lists the names", metavar="auto|none|hub:H|keras:N"),
    Flag("--backbone-weights", "model.backbone_weights", str, "keras: backbones: imagenet (default, needs "
         "internet once), a local .weights.h5 file, or random", metavar="imagenet|FILE|random"),
    Flag("--finetune-epochs", "train.finetune_epochs", int, "phase 2: epochs that also train the backbone"),
    Flag("--finetune-learning-rate", "train.finetune_learning_rate", float, "phase 2 learning rate"),
    Flag("--finetune-pattern", "train.finetune_pattern", str, "phase 2 trains only backbone variables "
         "whose name matches this regex", metavar="REGEX"),
    Flag("--path-column", "data.path_column", str, "manifest column holding image paths"),
    Flag("--label-column", "data.label_column", str, "manifest column holding labels"),
)
