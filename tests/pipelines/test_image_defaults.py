"""The image task's default model rule, and the 32-px floor of pretrained backbones."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sensorium.pipelines.image.config import ImageClassificationConfig
from sensorium.pipelines.image.defaults import (
    AUTO_BACKBONE,
    AUTO_FINETUNE_EPOCHS,
    check_pretrained_sizes,
    resolve_backbone,
)
from sensorium.runtime.errors import DataError


def _folder(root, size: int, colour: bool, per_class: int = 12):
    rng = np.random.default_rng(size)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            if colour:
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            else:
                pixels = np.repeat(rng.integers(0, 256, (size, size, 1), dtype=np.uint8), 3, axis=-1)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    return root


def _config(data: str, **model) -> ImageClassificationConfig:
    cfg = ImageClassificationConfig()
    cfg.data.spec = data
    for key, value in model.items():
        setattr(cfg.model, key, value)
    return cfg


@pytest.mark.parametrize("size, colour, backbone, finetune", [
    (40, True, AUTO_BACKBONE, AUTO_FINETUNE_EPOCHS),  # colour photos: the pretrained network, fine-tuned
    (40, False, None, 0),  # greyscale: our CNN from scratch
    (16, True, None, 0),  # too small for a 224-px ImageNet network
])
def test_auto_picks_by_colour_and_size(tmp_path, size, colour, backbone, finetune):
    cfg = _config(str(_folder(tmp_path / "d", size, colour)))
    assert cfg.model.backbone == "auto" and cfg.train.finetune_epochs is None  # the defaults
    resolve_backbone(cfg)
    assert cfg.model.backbone == backbone and cfg.train.finetune_epochs == finetune


def test_builtin_digits_and_explicit_choices(tmp_path):
    cfg = _config("builtin:digits")  # 8x8 greyscale digits
    resolve_backbone(cfg)
    assert cfg.model.backbone is None
    colour = str(_folder(tmp_path / "c", 40, True))
    cfg = _config(colour, backbone="none")
    resolve_backbone(cfg)
    assert cfg.model.backbone is None and cfg.train.finetune_epochs == 0
    cfg = _config(colour, backbone="hub:efficientnet_lite1")
    resolve_backbone(cfg)  # a named backbone is kept; phase 2 only when asked for
    assert cfg.model.backbone == "hub:efficientnet_lite1" and cfg.train.finetune_epochs == 0


def test_a_pretrained_backbone_refuses_small_images_in_one_line(tmp_path):
    data = _folder(tmp_path / "d", 40, True)
    Image.new("RGB", (20, 48)).save(data / "a" / "tiny.png")
    cfg = _config(str(data), backbone="hub:efficientnet_lite0")
    with pytest.raises(DataError, match=r"tiny\.png: 20 px is under the 32 px a pretrained backbone "
                                        r"\(hub:efficientnet_lite0\) needs \(1 such image\(s\)\); use --backbone none"):
        check_pretrained_sizes(cfg)
    check_pretrained_sizes(_config(str(data), backbone=None))  # from scratch: any size


def test_the_cli_fine_tunes_by_default_and_says_what_to_set_up(tmp_path, monkeypatch, capsys):
    """Colour photos with no --backbone pick EfficientNet-Lite0; not set up, that is one line, exit 1."""
    from sensorium.apps import main as sensorium_app

    monkeypatch.setenv("SENSORIUM_CACHE", str(tmp_path / "empty-cache"))
    data, out = _folder(tmp_path / "d", 40, True), tmp_path / "run"
    assert sensorium_app.main(["train", "image", "--data", str(data), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "colour images of at least 32 px: fine-tuning hub:efficientnet_lite0" in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "run `sensorium data backbones` once" in errors[0], err
    code = sensorium_app.main(["train", "image", "--data", str(data), "--out", str(tmp_path / "scratch"),
                               "--backbone", "none", "--epochs", "1", "--image-size", "16", "--widths", "4,8",
                               "--batch-size", "8", "-q"])
    assert code == 0
    config = json.loads((tmp_path / "scratch" / "config.json").read_text())
    assert config["model"]["backbone"] is None and config["train"]["finetune_epochs"] == 0  # recorded resolved


def test_runtime_refuses_images_under_the_models_min_side(tmp_path):
    from sensorium.runtime.image import ImageClassifier

    clf = ImageClassifier(["x", "y"], (8, 8), lambda x: np.tile([[0.3, 0.7]], (len(x), 1)), "test", min_side=32)
    Image.new("RGB", (31, 64)).save(tmp_path / "small.png")
    Image.new("RGB", (32, 32)).save(tmp_path / "ok.png")
    records = clf([str(tmp_path / "small.png"), str(tmp_path / "ok.png"), np.zeros((10, 40, 3), np.uint8)],
                  errors="record")
    assert [r["ok"] for r in records] == [False, True, False]
    assert records[0]["error"].endswith("small.png: image is 31x64 px; this model needs at least 32 px on each side")
    assert "image is 40x10 px" in records[2]["error"]
