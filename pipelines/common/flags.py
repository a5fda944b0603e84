"""Command-line flags of `sensorium train|tune TASK`: each sets one dotted key of the task's config.

A task declares its flags (`FLAGS`) next to its config dataclass; the task registry names them and the
CLI builds the options from them, so a new task needs no new CLI code.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Flag:
    """A command-line option that sets one dotted config key (`--epochs` -> `train.epochs`)."""

    option: str
    key: str
    type: Callable[[str], Any] = str
    help: str = ""
    choices: tuple[str, ...] | None = None
    metavar: str | None = None


def int_pair(text: str) -> list[int]:
    """`64` -> [64, 64]; `48x64` -> [48, 64] (height x width)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"expected N or HxW, got {text!r}") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise ValueError(f"expected N or HxW with positive sizes, got {text!r}")
    return values


def yes_no(text: str) -> bool:
    if text.lower() in ("yes", "true", "1", "on"):
        return True
    if text.lower() in ("no", "false", "0", "off"):
        return False
    raise ValueError(f"expected yes or no, got {text!r}")


def int_list(text: str) -> list[int]:
    return [int(p) for p in text.replace(" ", "").split(",") if p]


def float_list(text: str) -> list[float]:
    """`0.6,1,2` -> [0.6, 1.0, 2.0]."""
    try:
        values = [float(p) for p in text.replace(" ", "").split(",") if p]
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"expected comma-separated numbers, got {text!r}")
    return values


def name_list(text: str) -> list[str]:
    """`0,1,2` -> ["0", "1", "2"] (class names as the data names them)."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise ValueError(f"expected comma-separated class names, got {text!r}")
    return names


# Options every trainable task shares (the contracts' grammar).
COMMON_TRAIN_FLAGS: tuple[Flag, ...] = (
    Flag("--data", "data.spec", str, "training data spec (SOURCE[@SPLIT]); @train is used by default", metavar="SPEC"),
    Flag("--validation-data", "data.validation_spec", str,
         "validation data spec (default: the source's validation split)", metavar="SPEC"),
    Flag("--epochs", "train.epochs", int, "maximum number of epochs"),
    Flag("--batch-size", "train.batch_size", int, "global batch size"),
    Flag("--learning-rate", "train.learning_rate", float, "peak learning rate"),
    Flag("--optimizer", "train.optimizer", str, "optimizer", choices=("adam", "adamw", "sgd")),
    Flag("--seed", "seed", int, "random seed (splits, initialisation, shuffling)"),
    Flag("--strategy", "train.strategy", str, "tf.distribute strategy: auto (every GPU of this machine), default "
         "(one device), mirrored, or multiworker (the cluster in TF_CONFIG)",
         choices=("auto", "default", "mirrored", "multiworker")),
    Flag("--mixed-precision", "train.mixed_precision", str, "mixed precision: float16 on a GPU, bfloat16 on a "
         "CPU that has it natively with oneDNN on, else float32 (auto: on a GPU, and on a CPU for the image CNN "
         "from scratch and the translator, whose steps it speeds up)",
         choices=("auto", "on", "off")),
    Flag("--threads", "train.threads", str, "TensorFlow's thread pools: default, split (half the cores per op, 2 "
         "ops at a time, on a CPU; speech's default) or INTRA,INTER", metavar="default|split|I,O"),
    Flag("--patience", "train.early_stopping_patience", int, "early-stopping patience in epochs (0: off)"),
    Flag("--data-dir", "data.data_dir", str, "TFDS data_dir", metavar="DIR"),
)

# The generative tasks share their model flags; each adds its own.
GENERATIVE_FLAGS: tuple[Flag, ...] = COMMON_TRAIN_FLAGS + (
    Flag("--latent-dim", "model.latent_dim", int, "size of the latent vector / code"),
    Flag("--widths", "model.widths", int_list, "filters per stride-2 encoder stage, e.g. 32,64 (the decoder / "
         "generator mirrors them)", metavar="W,W,..."),
    Flag("--image-size", "model.image_size", int_pair, "model image size, N or HxW (default 28)", metavar="N|HxW"),
    Flag("--channels", "model.channels", int, "1 (grayscale model, default) or 3 (RGB)"),
    Flag("--classes", "data.classes", name_list, "train on these classes only, e.g. 0,1,2,3,4,5,6,7,8",
         metavar="C,C,..."),
    Flag("--eval-samples", "samples", int, "generated images scored in evaluations (vae, gan; default 1000)"),
    Flag("--path-column", "data.path_column", str, "manifest column holding image paths"),
    Flag("--label-column", "data.label_column", str, "manifest column holding labels (for --classes)"),
)
