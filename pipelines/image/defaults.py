"""The rule that picks an image model when the user names none (`model.backbone = "auto"`, the default).

- Colour images of at least MIN_PRETRAINED_SIDE px (on both sides, in a sample of the training data):
  fine-tune the ImageNet-pretrained `hub:efficientnet_lite0` (as MediaPipe Model Maker does), head first
  and then the whole network for AUTO_FINETUNE_EPOCHS epochs (unless `train.finetune_epochs` is set).
- Greyscale images (all channels equal, as MNIST's) or smaller ones: our CNN from scratch, which suits
  digits, glyphs and other small monochrome data better than a 224-px photo network.
- `--backbone none` always trains from scratch; `--backbone NAME` uses that backbone.

The choice, and why, is logged and recorded in config.json, so the run reproduces without the rule.
With a pretrained backbone every image must be at least MIN_PRETRAINED_SIDE px: smaller ones are
refused in one line (upscaled 7x, a 32-px thumbnail carries nothing the backbone was trained on).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)

AUTO_BACKBONE = "hub:efficientnet_lite0"
AUTO_FINETUNE_EPOCHS = 10
MIN_PRETRAINED_SIDE = 32
PROBE_ITEMS = 64  # images looked at to decide
GREY_TOLERANCE = 2  # a pixel is grey when its channels differ by at most this much


@dataclass(frozen=True)
class DataLook:
    """What a sample of the training images shows."""

    colour: bool
    smallest: int  # the smallest side seen, px
    smallest_item: str
    looked_at: int


def _look_at_arrays(images: np.ndarray, ids: list[str]) -> DataLook:
    """(N, H, W, 3) uint8 in memory (builtin sources)."""
    sample = images[:PROBE_ITEMS].astype(np.int16)
    spread = np.abs(sample - sample[..., :1]).max() if sample.size else 0
    side = min(images.shape[1:3]) if images.ndim == 4 else 0
    return DataLook(bool(spread > GREY_TOLERANCE), int(side), ids[0] if ids else "", len(sample))


def _look_at_files(paths: list[str]) -> DataLook:
    """Image files: the header gives the size, a thumbnail the colour."""
    from PIL import Image

    from sensorium.runtime.image_io import load_image

    rng = np.random.default_rng(0)
    chosen = [paths[i] for i in sorted(rng.choice(len(paths), min(PROBE_ITEMS, len(paths)), replace=False))]
    colour, smallest, where, seen = False, 1 << 30, "", 0
    for path in chosen:
        try:
            with Image.open(path) as im:
                w, h = im.size
            pixels = load_image(path, size=(32, 32)).astype(np.int16)  # RGB: greyscale files come as R=G=B
        except Exception:  # an unreadable file is the data loader's to report, item by item
            continue
        seen += 1
        if min(w, h) < smallest:
            smallest, where = min(w, h), path
        colour = colour or bool(np.abs(pixels - pixels[..., :1]).max() > GREY_TOLERANCE)
    return DataLook(colour, smallest if seen else 0, where, seen)


def look_at(cfg: Any, seed: int) -> DataLook | None:
    """A look at the training data of `cfg` (an image DataConfig), or None when it cannot be probed
    cheaply (TFDS sources: the rule then keeps the CNN)."""
    from sensorium.pipelines.common.dataspec import parse_spec
    from sensorium.pipelines.image.data import _items_for

    spec = parse_spec(cfg.spec)
    if spec.kind == "tfds":
        return None
    train_spec = spec if spec.split else parse_spec(f"{spec.text}@train")
    try:
        items, _ = _items_for(train_spec, cfg, seed, "train")
    except DataError:
        items, _ = _items_for(spec, cfg, seed, "train")
    if isinstance(items.refs, np.ndarray):
        return _look_at_arrays(items.refs, list(items.ids))
    return _look_at_files([str(r) for r in items.refs])


def resolve_backbone(config: Any) -> None:
    """Settle `config.model.backbone` ("auto", "none", a name) and `train.finetune_epochs` (None: the
    rule's) in place, before the model size is resolved. Logs the choice."""
    model, train = config.model, config.train
    chosen_by_rule = False
    if model.backbone in (None, "", "none"):
        model.backbone = None
    elif model.backbone == "auto":
        look = look_at(config.data, config.seed)
        if look is not None and look.colour and look.smallest >= MIN_PRETRAINED_SIDE:
            model.backbone, chosen_by_rule = AUTO_BACKBONE, True
            log.info("colour images of at least %d px: fine-tuning %s, pretrained on ImageNet (the default; "
                     "--backbone none trains our CNN from scratch)", MIN_PRETRAINED_SIDE, AUTO_BACKBONE)
        else:
            model.backbone = None
            why = ("greyscale images" if look is not None and not look.colour else
                   f"images under {MIN_PRETRAINED_SIDE} px" if look is not None else "a TFDS source")
            log.info("%s: training our CNN from scratch (the default for them; --backbone %s fine-tunes a "
                     "pretrained network)", why, AUTO_BACKBONE)
    if train.finetune_epochs is None:
        train.finetune_epochs = AUTO_FINETUNE_EPOCHS if chosen_by_rule else 0


def check_pretrained_sizes(config: Any) -> None:
    """One line when a pretrained backbone is asked to learn from images under MIN_PRETRAINED_SIDE px
    (every file's header is read; in-memory sources by their array shape)."""
    from PIL import Image

    from sensorium.pipelines.common.dataspec import parse_spec
    from sensorium.pipelines.image.data import _items_for

    if not config.model.backbone:
        return
    spec = parse_spec(config.data.spec)
    if spec.kind == "tfds":
        return
    items, _ = _items_for(spec if spec.split else parse_spec(f"{spec.text}@all"), config.data, config.seed, "train")
    if isinstance(items.refs, np.ndarray):
        sides = [(min(items.refs.shape[1:3]), items.ids[0] if items.ids else config.data.spec)]
    else:
        sides = []
        for path in items.refs:
            try:
                with Image.open(path) as im:
                    sides.append((min(im.size), str(path)))
            except Exception:  # unreadable files are reported item by item when the data loads
                continue
    side, where = min(sides, default=(MIN_PRETRAINED_SIDE, ""))
    if side < MIN_PRETRAINED_SIDE:
        small = sum(1 for s, _ in sides if s < MIN_PRETRAINED_SIDE)
        raise DataError(f"{where}: {side} px is under the {MIN_PRETRAINED_SIDE} px a pretrained backbone "
                        f"({config.model.backbone}) needs ({small} such image(s)); use --backbone none to train "
                        "from scratch on small images")
