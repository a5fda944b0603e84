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
    from sensorium.models.image_classifier import ImageClassifierSpec, build_image_classifier

    keras.utils.set_random_seed(0)
    model = build_image_classifier(ImageClassifierSpec(image_size=(16, 16), channels=3, widths=(4, 8)), 2)
    return write_hub_module(model, tmp_path_factory.mktemp("hub") / "module", image_size=(16, 16), meta={})


def _backbone_values(run_dir):
    from sensorium.pipelines.common.artifacts import load_keras

    model = load_keras(run_dir / "model.keras")
    backbone = model.get_layer("backbone")
    return {w.path: w.numpy() for w in backbone.weights}, {w.path for w in backbone.trainable_weights}


def _module_values(module_dir):
    import tensorflow_hub as hub

    return [v.numpy() for v in hub.load(str(module_dir)).variables]


def test_phase_one_frozen_phase_two_fine_tunes(module_dir, image_folder, tmp_path):
    original = _module_values(module_dir)
    frozen = tmp_path / "frozen"
    assert sensorium_app.main(["train", "image", "--data", str(image_folder), "--out", str(frozen),
                               "--backbone", f"hub:{module_dir}", "--epochs", "2", *ARGS]) == 0
    values, _ = _backbone_values(frozen)
    assert len(values) == len(original)
    assert all(np.array_equal(a, b) for a, b in zip(values.values(), original))
    tuned = tmp_path / "tuned"
    assert sensorium_app.main(["train", "image", "--data", str(image_folder), "--out", str(tuned),
                               "--backbone", f"hub:{module_dir}", "--epochs", "1", "--finetune-epochs", "2",
                               "--finetune-learning-rate", "0.01", "--finetune-pattern", "kernel", *ARGS]) == 0
    values, _ = _backbone_values(tuned)
    changed = [p for (p, a), b in zip(values.items(), original) if not np.array_equal(a, b)]
    kernels = [p for p in values if "kernel" in p]
    assert changed and set(changed) <= set(kernels) and len(kernels) < len(values)  # only what the pattern selected
    history = json.loads((tuned / "checkpoints" / "state.json").read_text())["history"]
    assert len(history["loss"]) == 3  # one head-only epoch + two fine-tuning epochs


def test_bad_backbone_handle_is_one_line(image_folder, tmp_path, capsys):
    code = sensorium_app.main(["train", "image", "--data", str(image_folder), "--out", str(tmp_path / "r"),
                               "--backbone", f"hub:{tmp_path / 'nowhere'}", "--epochs", "1", *ARGS])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "cannot load hub module" in errors[0] and "Traceback" not in err


def test_resume_across_the_phase_boundary(module_dir, image_folder, tmp_path, interrupt_training):
    """Interrupted right after phase 1, `--resume` starts phase 2 and fine-tunes the backbone."""
    out = tmp_path / "run"
    args = ["train", "image", "--data", str(image_folder), "--out", str(out), "--backbone", f"hub:{module_dir}",
            "--epochs", "2", "--finetune-epochs", "2", "--finetune-learning-rate", "0.01", *ARGS]
    interrupt_training(2)
    assert sensorium_app.main(args) == 130
    assert json.loads((out / "checkpoints" / "state.json").read_text())["epoch"] == 2
    interrupt_training(None)
    assert sensorium_app.main(["train", "image", "--out", str(out), "--resume", "-q"]) == 0
    assert len(json.loads((out / "checkpoints" / "state.json").read_text())["history"]["loss"]) == 4
    values, _ = _backbone_values(out)
    assert any(not np.array_equal(a, b) for a, b in zip(values.values(), _module_values(module_dir)))
