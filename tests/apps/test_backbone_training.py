"""`train image --backbone hub:MODULE`: phase 1 leaves the backbone untouched, phase 2 changes it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sensorium.apps import main as sensorium_app

ARGS = ["--image-size", "16", "--batch-size", "8", "--patience", "0", "--seed", "3", "-q"]


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory):
    import keras

    from sensorium.export.hub_module import write_hub_module
    from sensorium.models.image import ImageClassifierSpec, build_image_classifier

    keras.utils.set_random_seed(0)
    model = build_image_classifier(ImageClassifierSpec(image_size=(16, 16), channels=3, widths=(4, 8)), 2)
    # pretrained a little on shapes of its own, so its features mean something (and the test data's
    # classes are separable on them, as with a real pretrained backbone)
    x, y = _pretraining_shapes()
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=4, batch_size=16, verbose=0)
    return write_hub_module(model, tmp_path_factory.mktemp("hub") / "module", image_size=(16, 16), meta={})


def _pretraining_shapes(n: int = 64):
    """Bright squares and bars of random position on noise: (n, 16, 16, 3) uint8, labels (n,)."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 40, (n, 16, 16, 3), dtype=np.uint8)
    y = np.arange(n) % 2
    for img, label in zip(x, y):
        r, c = rng.integers(1, 7, 2)
        if label:
            img[r:r + 8, c:c + 8] = 220
        else:
            img[r + 3:r + 5, 1:15] = 220
    return x, y


def _backbone_values(run_dir):
    from sensorium.pipelines.common.artifacts import load_keras

    model = load_keras(run_dir / "model.keras")
    backbone = model.get_layer("backbone")
    return {w.path: w.numpy() for w in backbone.weights}, {w.path for w in backbone.trainable_weights}


def _module_values(module_dir):
    import tensorflow_hub as hub

    return [v.numpy() for v in hub.load(str(module_dir)).variables]


def test_phase_one_frozen_phase_two_fine_tunes(module_dir, shapes32, tmp_path):
    original = _module_values(module_dir)
    frozen = tmp_path / "frozen"
    assert sensorium_app.main(["train", "image", "--data", str(shapes32), "--out", str(frozen),
                               "--backbone", f"hub:{module_dir}", "--epochs", "2", *ARGS]) == 0
    values, _ = _backbone_values(frozen)
    assert len(values) == len(original)
    assert all(np.array_equal(a, b) for a, b in zip(values.values(), original))
    tuned = tmp_path / "tuned"
    assert sensorium_app.main(["train", "image", "--data", str(shapes32), "--out", str(tuned),
                               "--backbone", f"hub:{module_dir}", "--epochs", "1", "--finetune-epochs", "2",
                               "--finetune-learning-rate", "0.01", "--finetune-pattern", "kernel", *ARGS]) == 0
    values, _ = _backbone_values(tuned)
    changed = [p for (p, a), b in zip(values.items(), original) if not np.array_equal(a, b)]
    kernels = [p for p in values if "kernel" in p]
    assert changed and set(changed) <= set(kernels) and len(kernels) < len(values)  # only what the pattern selected
    history = json.loads((tuned / "checkpoints" / "state.json").read_text())["history"]
    assert len(history["loss"]) == 3  # one head-only epoch + two fine-tuning epochs


def test_a_pretrained_backbone_fine_tunes_in_float32_on_a_bf16_cpu(module_dir, shapes32, tmp_path, monkeypatch):
    """bfloat16 gains a pretrained backbone's step nothing (README "oneDNN and bfloat16"), so `auto` keeps
    float32 even where the CPU has it natively and oneDNN is on (both faked here)."""
    import keras

    from sensorium.pipelines.common import strategy

    monkeypatch.setattr(strategy, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(strategy, "onednn_enabled", lambda: True)
    out = tmp_path / "f32"
    try:
        assert sensorium_app.main(["train", "image", "--data", str(shapes32), "--out", str(out),
                                   "--backbone", f"hub:{module_dir}", "--epochs", "1", *ARGS]) == 0
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert json.loads((out / "sensorium.json").read_text())["summary"]["precision_policy"] == "float32"


def test_bad_backbone_handle_is_one_line(shapes32, tmp_path, capsys):
    code = sensorium_app.main(["train", "image", "--data", str(shapes32), "--out", str(tmp_path / "r"),
                               "--backbone", f"hub:{tmp_path / 'nowhere'}", "--epochs", "1", *ARGS])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "cannot resolve hub handle" in errors[0] and "Traceback" not in err


def test_resume_across_the_phase_boundary(module_dir, shapes32, tmp_path, interrupt_training):
    """Interrupted right after phase 1, `--resume` starts phase 2 and fine-tunes the backbone."""
    out = tmp_path / "run"
    args = ["train", "image", "--data", str(shapes32), "--out", str(out), "--backbone", f"hub:{module_dir}",
            "--epochs", "2", "--finetune-epochs", "2", "--finetune-learning-rate", "0.01", *ARGS]
    interrupt_training(2)
    assert sensorium_app.main(args) == 130
    assert json.loads((out / "checkpoints" / "state.json").read_text())["epoch"] == 2
    interrupt_training(None)
    assert sensorium_app.main(["train", "image", "--out", str(out), "--resume", "-q"]) == 0
    assert len(json.loads((out / "checkpoints" / "state.json").read_text())["history"]["loss"]) == 4
    values, _ = _backbone_values(out)
    assert any(not np.array_equal(a, b) for a, b in zip(values.values(), _module_values(module_dir)))


@pytest.fixture(scope="module")
def tuned_hub_run(module_dir, shapes32, tmp_path_factory):
    out = tmp_path_factory.mktemp("tuned") / "hub-run"
    assert sensorium_app.main(["train", "image", "--data", str(shapes32), "--out", str(out), "--backbone",
                               f"hub:{module_dir}", "--epochs", "3", "--finetune-epochs", "2",
                               "--learning-rate", "0.01", "--finetune-learning-rate", "0.003", *ARGS]) == 0
    return out


@pytest.fixture(scope="module")
def keras_weights(tmp_path_factory):
    """Random MobileNetV3Small weights saved the way a user saves downloaded ones (include_top=False)."""
    import keras

    keras.utils.set_random_seed(1)
    network = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3),
                                                  pooling="avg")
    x, y = _pretraining_shapes(128)  # "pretrained" briefly, so its features (and batch norms) mean something
    classifier = keras.Sequential([network, keras.layers.Dense(2, activation="softmax")])
    classifier.compile(keras.optimizers.Adam(0.003), "sparse_categorical_crossentropy")
    classifier.fit(x.repeat(2, axis=1).repeat(2, axis=2).astype("float32"), y, epochs=4, batch_size=16, verbose=0)
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v3_small_notop.weights.h5"
    network.save_weights(path)
    return path, {w.path.split("/", 1)[1]: w.numpy() for w in network.weights}


# the keras.applications variant (MobileNetV3, about 100 s) runs with the slow marker; the hub variant
# covers the same export path in the default run
@pytest.mark.parametrize("which", ["hub", pytest.param("keras", marks=pytest.mark.slow)])
def test_fine_tuned_model_exports_everywhere_with_parity(which, request, shapes32, make_shape_image, tmp_path):
    """A fine-tuned model exports to SavedModel and to TFLite in every quantisation mode, parity passing."""
    run = request.getfixturevalue("tuned_hub_run" if which == "hub" else "tuned_keras_run")
    parity = f"{shapes32}@train"
    calibration = tmp_path / "calibration.npy"
    images = np.stack([make_shape_image(("bar", "square")[i % 2]) for i in range(200)])  # (200, 16, 16, 3)
    scale = json.loads((run / "config.json").read_text())["model"]["image_size"][0] // 16
    np.save(calibration, images.repeat(scale, axis=1).repeat(scale, axis=2))  # at the model's input size
    for fmt in ("saved_model", "tflite"):
        argv = ["export", "--model", str(run), "--format", fmt, "--parity-data", parity, "--overwrite", "-q"]
        tflite = ["--quantize", "all", "--calibration-data", str(calibration)] if fmt == "tflite" else []
        assert sensorium_app.main(argv + tflite) == 0
    variants = json.loads((run / "exports" / "parity.json").read_text())["variants"]
    assert {"saved_model", "none", "dynamic", "float16", "int8"} <= set(variants), variants.keys()
    assert all(row["passed"] for row in variants.values()), [(v, r["agreement"]) for v, r in variants.items()]


@pytest.fixture(scope="module")
def tuned_keras_run(keras_weights, shapes32, tmp_path_factory):
    path, _ = keras_weights
    out = tmp_path_factory.mktemp("tuned") / "keras-run"
    assert sensorium_app.main(["train", "image", "--data", str(shapes32), "--out", str(out), "--backbone",
                               "keras:MobileNetV3Small", "--backbone-weights", str(path), "--image-size", "32",
                               "--epochs", "2", "--finetune-epochs", "2", "--learning-rate", "0.01",
                               "--finetune-learning-rate", "0.01", *ARGS[2:]]) == 0
    return out


def test_keras_backbone_two_phases_keep_batchnorm_frozen(keras_weights, tuned_keras_run, shapes32, tmp_path):
    from sensorium.pipelines.common.artifacts import load_keras

    _, original = keras_weights
    head_only = tmp_path / "head-only"
    assert sensorium_app.main(["train", "image", "--data", str(shapes32), "--out", str(head_only), "--backbone",
                               "keras:MobileNetV3Small", "--backbone-weights", str(keras_weights[0]),
                               "--image-size", "32", "--epochs", "1", *ARGS[2:]]) == 0
    for run, phase2 in ((head_only, False), (tuned_keras_run, True)):
        backbone = load_keras(run / "model.keras").get_layer("backbone")
        values = {w.path.split("/", 1)[1]: w.numpy() for w in backbone.weights}
        assert values.keys() == original.keys()
        changed = {k for k in values if not np.array_equal(values[k], original[k])}
        moving = {k for k in values if "moving_" in k}
        assert moving and not changed & moving  # batch-norm statistics stay frozen in both phases
        assert bool(changed) == phase2  # phase 1 leaves the backbone untouched, phase 2 trains it
    config = json.loads((tuned_keras_run / "config.json").read_text())
    assert config["model"]["image_size"] == [32, 32] and config["model"]["backbone"] == "keras:MobileNetV3Small"


def test_keras_backbone_bad_weights_are_one_line(keras_weights, shapes32, tmp_path, capsys, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):  # what Keras raises offline, also on machines that have a network
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -2] Name or "
                        "service not known")

    import shutil

    import h5py

    monkeypatch.setattr(file_utils, "get_file", offline)
    truncated = tmp_path / "truncated.weights.h5"
    shutil.copy(keras_weights[0], truncated)
    with h5py.File(truncated, "a") as f:
        del f["layers"]["conv2d"]  # one convolution's weights missing
    for backbone, weights, message in (
            ("MobileNetV2", str(keras_weights[0]), "keras:MobileNetV2 cannot use weights file"),  # another network's
            ("MobileNetV3Small", str(truncated), "keras:MobileNetV3Small cannot use weights file"),
            ("MobileNetV2", str(tmp_path / "none.weights.h5"), "weights file not found"),
            ("MobileNetV2", "imagenet", "no internet")):
        code = sensorium_app.main(["train", "image", "--data", str(shapes32), "--out", str(tmp_path / "r"),
                                   "--overwrite", "--backbone", f"keras:{backbone}", "--backbone-weights", weights,
                                   "--image-size", "32", "--epochs", "1", *ARGS[2:]])
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 1 and len(errors) == 1 and message in errors[0] and "Traceback" not in err, err


def test_a_hub_backbone_model_loads_in_a_fresh_process(tuned_hub_run, module_dir):
    """`classify`, `evaluate` and `export` load model.keras in a process that never built a model: the
    backbone layer must be registered by the loader itself. A backbone from our own hub module is its
    Keras network, weights included: the model loads with the module folder gone."""
    import subprocess
    import sys

    code = ("from pathlib import Path; from sensorium.pipelines.common.artifacts import load_keras; "
            f"m = load_keras(Path({str(tuned_hub_run / 'model.keras')!r})); "
            "print(type(m.get_layer('backbone')).__name__)")
    away = module_dir.with_name("module-away")
    module_dir.rename(away)
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    finally:
        away.rename(module_dir)
    assert proc.returncode == 0 and proc.stdout.strip() == "EmbeddedBackbone", proc.stderr[-500:]
