"""The image task through its command lines, in-process (one TensorFlow import for all tests)."""
from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from sensorium.apps import classify as classify_app
from sensorium.apps import main as sensorium_app

TINY = ["--image-size", "16", "--widths", "4,8", "--batch-size", "8", "--seed", "1", "--patience", "0"]


def run_cli(app, argv, capsys):
    code = app.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained_run(image_folder, tmp_path_factory):
    """A complete run directory trained for 6 epochs on the shapes folder (shared by the tests)."""
    out = tmp_path_factory.mktemp("runs") / "shapes"
    code = sensorium_app.main(["train", "image", "--data", str(image_folder), "--out", str(out),
                               "--epochs", "6", "--learning-rate", "0.01", "--channels", "3", *TINY])
    assert code == 0
    return out


def test_train_writes_complete_run_directory(trained_run):
    manifest = json.loads((trained_run / "sensorium.json").read_text())
    assert manifest["task"] == "image" and manifest["status"] == "complete"
    for name in ("config.json", "model.keras", "labels.txt", "metrics.json", "history.csv", "model_card.md",
                 "plots/training_curves.png", "plots/confusion_matrix.png", "splits/train.txt",
                 "splits/validation.txt", "checkpoints/state.json"):
        assert (trained_run / name).is_file(), name
    assert (trained_run / "labels.txt").read_text().split() == ["bar", "square"]
    # stratified 80/10/10 of 15 + 15 images: per class round(1.5) = 2 validation, 2 test, 11 train
    train_ids = (trained_run / "splits/train.txt").read_text().split()
    val_ids = (trained_run / "splits/validation.txt").read_text().split()
    assert len(train_ids) == 22 and len(val_ids) == 4 and not set(train_ids) & set(val_ids)
    assert sum(i.startswith("bar/") for i in val_ids) == 2
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["count"] == 4
    assert len(json.loads((trained_run / "checkpoints/state.json").read_text())["history"]["loss"]) == 6
    assert "Evaluation" in (trained_run / "model_card.md").read_text()


def test_config_json_is_valid_config_input(trained_run, tmp_path, capsys, image_folder):
    out = tmp_path / "again"
    code, stdout, _ = run_cli(sensorium_app, ["train", "image", "--config", str(trained_run / "config.json"),
                                              "--epochs", "1", "--out", str(out), "-q"], capsys)
    assert code == 0 and "trained" in stdout
    first = json.loads((trained_run / "config.json").read_text())
    second = json.loads((out / "config.json").read_text())
    first["train"]["epochs"] = 1
    assert first == second


def test_evaluate_prints_and_writes_metrics(trained_run, image_folder, capsys, tmp_path):
    code, out, _ = run_cli(sensorium_app, ["evaluate", "--model", str(trained_run), "--data",
                                           f"{image_folder}@train", "--json", "--out", str(tmp_path)], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["task"] == "image" and result["split"] == "train" and result["count"] == 22
    m = result["metrics"]
    assert set(m["per_class"]) == {"bar", "square"} and "top_2_accuracy" in m
    assert m["accuracy"] >= 0.9  # the shapes are easy: a trained model must get them
    assert json.loads((tmp_path / "metrics.json").read_text()) == result
    assert (tmp_path / "plots" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    recorded = {p: p.read_bytes() for p in (trained_run / "metrics.json", trained_run / "plots/confusion_matrix.png")}
    code, out, _ = run_cli(sensorium_app, ["evaluate", "--model", str(trained_run)], capsys)
    assert code == 0 and "accuracy" in out and "square" in out
    # without --out: its own folder under the run, said on stdout; training's records stay as they were
    assert f"evaluation written to {trained_run / 'evaluations'}" in out
    assert {p: p.read_bytes() for p in recorded} == recorded


def test_classify_good_and_bad_inputs(trained_run, tmp_path, capsys, make_shape_image):
    Image.fromarray(make_shape_image("square")).save(tmp_path / "sq.png")
    Image.fromarray(make_shape_image("bar")).convert("L").save(tmp_path / "bar_gray.png")
    Image.fromarray(make_shape_image("square")).convert("RGBA").save(tmp_path / "sq_rgba.png")
    Image.fromarray(make_shape_image("square")).convert("CMYK").save(tmp_path / "sq_cmyk.jpg")
    Image.fromarray(make_shape_image("bar")[..., 0].astype(np.uint16) * 257).save(tmp_path / "bar16.png")
    Image.new("RGB", (1, 1), (5, 5, 5)).save(tmp_path / "tiny.png")
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "empty").mkdir()
    inputs = [str(tmp_path / n) for n in ("sq.png", "notes.png", "bar_gray.png", "sq_rgba.png", "sq_cmyk.jpg",
                                           "bar16.png", "tiny.png", "missing.png", "empty")]
    code, out, err = run_cli(classify_app, [*inputs, "--model", str(trained_run), "--json", "--top-k", "5"], capsys)
    assert code == 1  # some inputs failed
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["input"] for r in results] == inputs  # one object per input, in order
    ok = {r["input"].rsplit("/", 1)[-1]: r for r in results if r["ok"]}
    bad = {r["input"].rsplit("/", 1)[-1]: r for r in results if not r["ok"]}
    assert set(bad) == {"notes.png", "missing.png", "empty"}
    for r in bad.values():
        assert set(r) == {"input", "ok", "error"} and "\n" not in r["error"]
    assert ok["sq.png"]["label"] == "square" and ok["sq_cmyk.jpg"]["label"] == "square"
    assert ok["bar_gray.png"]["label"] == "bar" and ok["bar16.png"]["label"] == "bar"
    assert len(ok["tiny.png"]["top_k"]) == 2  # top-k capped at the number of classes
    assert abs(sum(t["score"] for t in ok["sq.png"]["top_k"]) - 1) < 1e-3
    assert "Traceback" not in err


def test_classify_text_output_and_folder_input(trained_run, image_folder, capsys):
    code, out, err = run_cli(classify_app, [str(image_folder / "square"), "--model", str(trained_run)], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 15 and all(line.split("\t")[1] in ("bar", "square") for line in lines)
    assert sum(line.split("\t")[1] == "square" for line in lines) >= 13


def test_bad_models_give_one_line(trained_run, tmp_path, capsys, image_folder):
    not_done = tmp_path / "not_done"
    shutil.copytree(trained_run, not_done)
    manifest = json.loads((not_done / "sensorium.json").read_text())
    manifest["status"] = "training"
    (not_done / "sensorium.json").write_text(json.dumps(manifest))
    other = tmp_path / "other"
    shutil.copytree(trained_run, other)
    manifest["status"], manifest["task"] = "complete", "speech"
    (other / "sensorium.json").write_text(json.dumps(manifest))
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 truncated zip")
    img = str(image_folder / "bar" / "bar00.png")
    for model, message in ((not_done, "is not complete"), (other, "is a 'speech' model, not 'image'"),
                           (broken, "not a valid .keras model file"), (tmp_path / "nope", "no such model")):
        code, out, err = run_cli(classify_app, [img, "--model", str(model)], capsys)
        assert code == 1 and out == ""
        assert err.count("\n") == 1 and message in err, err


def test_keras_file_artifact(trained_run, capsys, image_folder):
    code, out, _ = run_cli(classify_app, [str(image_folder / "bar" / "bar00.png"), "--model",
                                          str(trained_run / "model.keras"), "--json"], capsys)
    assert code == 0 and json.loads(out)["ok"]


def test_data_errors_exit_1_usage_errors_exit_2(tmp_path, capsys, image_folder):
    one_class = tmp_path / "one"
    (one_class / "cats").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(one_class / "cats" / "a.png")
    (tmp_path / "emptydir").mkdir()
    cases = [
        (["--data", "nosuch:thing"], "valid data specs"),
        (["--data", str(one_class)], "only one class"),
        (["--data", str(tmp_path / "emptydir")], "no usable files"),
        (["--data", "builtin:nothing"],
         "unknown builtin dataset 'nothing'; known: "),
    ]
    for i, (args, message) in enumerate(cases):
        code, _, err = run_cli(sensorium_app, ["train", "image", *args, "--out", str(tmp_path / f"r{i}"), *TINY],
                               capsys)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 1 and len(errors) == 1 and message in errors[0] and "Traceback" not in err, err
        manifest = tmp_path / f"r{i}" / "sensorium.json"
        assert not manifest.exists() or json.loads(manifest.read_text())["status"] != "complete"
    with pytest.raises(SystemExit) as exc:
        sensorium_app.main(["train", "image", "--data", "x"])  # --out missing: argparse usage error
    assert exc.value.code == 2
    code, _, err = run_cli(sensorium_app, ["train", "image", "--data", str(image_folder), "--out",
                                           str(tmp_path / "r9"), "--epochs", "0", *TINY], capsys)
    assert code == 2 and "train.epochs must be at least 1" in err


def test_resume_after_interrupt_loses_no_epoch(image_folder, tmp_path, capsys, interrupt_training):
    out = tmp_path / "run"
    args = ["train", "image", "--data", str(image_folder), "--out", str(out), "--epochs", "4", *TINY]
    interrupt_training(2)
    code, _, err = run_cli(sensorium_app, args, capsys)
    assert code == 130 and "--resume" in err
    assert json.loads((out / "sensorium.json").read_text())["status"] == "training"
    assert json.loads((out / "checkpoints/state.json").read_text())["epoch"] == 2
    code, _, err = run_cli(classify_app, [str(image_folder / "bar" / "bar00.png"), "--model", str(out)], capsys)
    assert code == 1 and "not complete" in err  # an unfinished run is never used for inference
    interrupt_training(None)
    code, out_text, err = run_cli(sensorium_app, ["train", "image", "--out", str(out), "--resume"], capsys)
    assert code == 0, err
    state = json.loads((out / "checkpoints/state.json").read_text())
    assert state["epoch"] == 4 and len(state["history"]["loss"]) == 4
    assert (out / "history.csv").read_text().count("\n") == 5
    manifest = json.loads((out / "sensorium.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed"] == 1


def test_verbs_needing_tensorflow_name_the_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import tensorflow -> ImportError
    for app, argv in ((classify_app, ["x.png", "--runtime", "keras"]),
                      (sensorium_app, ["evaluate", "--model", str(tmp_path)])):
        code, out, err = run_cli(app, argv, capsys)
        assert code == 1 and 'pip install "sensorium[full]"' in err and err.count("\n") == 1, err


def test_mirrored_strategy_and_mixed_precision_save_a_float32_model(image_folder, tmp_path, capsys):
    import keras

    out = tmp_path / "mp"
    try:
        code, stdout, err = run_cli(sensorium_app, ["train", "image", "--data", str(image_folder), "--out", str(out),
                                                    "--epochs", "1", "--strategy", "mirrored",
                                                    "--mixed-precision", "on", *TINY], capsys)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert code == 0, err
    assert "MirroredStrategy" in err
    manifest = json.loads((out / "sensorium.json").read_text())
    from sensorium.pipelines.common.strategy import choose_precision, cpu_has_bf16, onednn_enabled

    # on a CPU: mixed bfloat16 where it is native and oneDNN on, else float32 (the tests run with oneDNN off)
    expected = choose_precision("on", has_gpu=False, bf16=cpu_has_bf16(), onednn=onednn_enabled())
    assert manifest["summary"]["precision_policy"] == expected
    assert manifest["summary"]["onednn"] is onednn_enabled()
    from sensorium.pipelines.common.artifacts import load_keras

    model = load_keras(out / "model.keras")
    assert {layer.dtype_policy.name for layer in model.layers if layer.weights} == {"float32"}
    # the float32 copy computes what was trained: its evaluation is in metrics.json already
    assert json.loads((out / "metrics.json").read_text())["count"] == 4


def test_evaluate_a_whole_folder_with_at_all(trained_run, image_folder, capsys, tmp_path):
    """`FOLDER@all` evaluates every image of the folder (a user's own test folder), not its 10% split."""
    code, out, _ = run_cli(sensorium_app, ["evaluate", "--model", str(trained_run), "--data",
                                           f"{image_folder}@all", "--json", "--out", str(tmp_path / "job")], capsys)
    assert code == 0 and json.loads(out)["count"] == 30 and json.loads(out)["split"] == "all"
    code, out, _ = run_cli(sensorium_app, ["evaluate", "--model", str(trained_run), "--data",
                                           f"{image_folder}@all[:7]", "--json"], capsys)
    assert code == 0 and json.loads(out.splitlines()[0])["count"] == 7
