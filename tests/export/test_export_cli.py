"""`sensorium export` round trips (every format and quantisation), parity, associated files, edge
runtime, and bad inputs. One small model trained on builtin:digits serves all tests."""
from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sensorium.apps import classify as classify_app
from sensorium.apps import main as sensorium_app
from sensorium.export.parity import THRESHOLDS

ROOT = Path(__file__).resolve().parents[2]


def run_cli(app, argv, capsys):
    code = app.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "digits"
    code = sensorium_app.main(["train", "image", "--data", "builtin:digits", "--out", str(out), "--image-size", "16",
                               "--widths", "16,32", "--epochs", "5", "--batch-size", "32", "--patience", "0", "-q"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def exported(run_dir):
    """Every TFLite variant and the SavedModel, exported once."""
    assert sensorium_app.main(["export", "--model", str(run_dir), "--format", "tflite", "--quantize", "all", "-q"]) == 0
    assert sensorium_app.main(["export", "--model", str(run_dir), "--format", "saved_model", "-q"]) == 0
    return run_dir / "exports"


def test_every_variant_round_trips_with_parity(exported, run_dir):
    import keras

    from sensorium.export.image import ImageExportSource
    from sensorium.pipelines.common.artifacts import inspect_artifact
    from sensorium.runtime.tflite import EdgeModel

    parity = json.loads((exported / "parity.json").read_text())["variants"]
    assert set(parity) == {"none", "dynamic", "float16", "int8", "int8-weights", "saved_model"}
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    x, y = ImageExportSource.load(inspect_artifact(run_dir)).load_images(None, "test")  # the run's @test split
    assert x.shape == (179, 16, 16, 3) and len(y) == 179
    want = model(x, training=False).numpy()
    sizes = {}
    for variant, name in (("none", "float32"), ("dynamic", "dynamic"), ("float16", "float16"), ("int8", "int8"),
                          ("int8-weights", "int8-weights")):
        path = exported / f"model-{name}.tflite"
        edge = EdgeModel(path)
        got = np.concatenate([edge(x[i : i + 16]) for i in range(0, len(x), 16)])
        agreement = float((got.argmax(1) == want.argmax(1)).mean())
        row = parity[variant]
        assert row["passed"] and row["count"] == len(x) and row["latency_calls"] >= 200
        assert abs(row["accuracy"] - float((got.argmax(1) == y).mean())) < 1e-9
        assert agreement >= THRESHOLDS[variant] >= (0.99 if variant in ("none", "float16") else 0.97)
        assert abs(row["agreement"] - agreement) < 1e-9  # the report is what running the file gives
        tol = {"none": 1e-5, "float16": 2e-2, "dynamic": 5e-2, "int8": 1e-1, "int8-weights": 5e-2}[variant]
        assert np.abs(got - want).max() <= tol, variant
        assert row["size_bytes"] == path.stat().st_size
        sizes[variant] = row["size_bytes"]
        assert edge.input["dtype"] == np.uint8  # every variant takes raw uint8 pixels
    assert sizes["int8"] < sizes["none"] / 2.5 and sizes["float16"] < sizes["none"]
    assert sizes["int8-weights"] < sizes["none"] / 2.5


def test_weight_only_int8_stores_int8_kernels_and_computes_in_float(exported):
    """int8-weights: every convolution and dense kernel is an int8 tensor read by a DEQUANTIZE op, and
    no activation is quantised (the input and output are as in the float32 file)."""
    from ai_edge_litert.interpreter import Interpreter

    from sensorium.runtime.tflite import EdgeModel, flatbuffer_part

    data = flatbuffer_part((exported / "model-int8-weights.tflite").read_bytes())
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    weighted = [op for op in ops if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    dequantized = {op["outputs"][0]: op["inputs"][0] for op in ops if op["op_name"] == "DEQUANTIZE"}
    assert weighted and all(op["inputs"][1] in dequantized for op in weighted)
    for op in weighted:
        int8 = details[dequantized[op["inputs"][1]]]
        assert int8["dtype"] == np.int8 and len(int8["quantization_parameters"]["scales"]) > 1  # per channel
        assert details[op["outputs"][0]]["dtype"] == np.float32
    edge = EdgeModel(exported / "model-int8-weights.tflite")
    assert edge.input["dtype"] == np.uint8


def test_associated_files_travel_inside(exported):
    from sensorium.runtime.tflite import flatbuffer_part, read_all

    data = (exported / "model-int8.tflite").read_bytes()
    files = read_all(data)
    assert files["labels.txt"].decode().split() == [str(d) for d in range(10)]
    meta = json.loads(files["sensorium.json"])
    assert meta["task"] == "image" and meta["variant"] == "int8" and meta["input"]["image_size"] == [16, 16]
    # the flatbuffer part alone is a complete model: the archive is only appended
    from ai_edge_litert.interpreter import Interpreter

    Interpreter(model_content=flatbuffer_part(data)).allocate_tensors()


def test_saved_model_signatures(exported):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(exported / "saved_model"))
    assert {"serving_default", "serving_bytes"} <= set(loaded.signatures)
    spec = loaded.signatures["serving_default"].structured_input_signature[1]["pixels"]
    assert spec.dtype == tf.uint8


def test_classify_with_edge_runtime_matches_keras(exported, run_dir, capsys):
    img = str(ROOT / "assets/examples/digit-7.png")
    code, out, _ = run_cli(classify_app, [img, "--model", str(exported / "model-float32.tflite"), "--json"], capsys)
    edge = json.loads(out)
    code2, out2, _ = run_cli(classify_app, [img, "--model", str(run_dir), "--json"], capsys)
    keras_result = json.loads(out2)
    assert code == code2 == 0 and edge["label"] == keras_result["label"]
    assert abs(edge["score"] - keras_result["score"]) < 1e-4


def test_edge_runtime_without_tensorflow(exported):
    """classify --runtime edge in a process where importing TensorFlow or Keras raises."""
    script = f"""
import sys, json
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
from sensorium.apps import classify
code = classify.main([{str(ROOT / 'assets/examples/digit-2.png')!r}, "--runtime", "edge", "--model",
                      {str(exported / 'model-int8.tflite')!r}, "--json"])
assert code == 0
code = classify.main([{str(ROOT / 'assets/examples/digit-2.png')!r}, "--model", "digits", "--json"])  # bundled int8
assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules), "TensorFlow was imported"
sys.exit(code)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == 2 and all(r["ok"] for r in results) and results[1]["label"] == "2"


def test_bad_inputs_one_line_and_no_partial_file(run_dir, exported, tmp_path, capsys, monkeypatch):
    # existing output without --overwrite
    code, _, err = run_cli(sensorium_app, ["export", "--model", str(run_dir), "--format", "tflite"], capsys)
    assert code == 2 and "exists; pass --overwrite" in err
    # unknown format: the list of known ones
    code, _, err = run_cli(sensorium_app, ["export", "--model", str(run_dir), "--format", "onnx"], capsys)
    assert code == 2 and "known: hub-module, saved_model, tflite" in err
    # calibration data of the wrong shape
    np.save(tmp_path / "cal.npy", np.zeros((300, 8, 8, 3), np.uint8))
    code, _, err = run_cli(sensorium_app, ["export", "--model", str(run_dir), "--format", "tflite", "--quantize",
                                           "int8", "--calibration-data", str(tmp_path / "cal.npy"), "--out",
                                           str(tmp_path / "m.tflite")], capsys)
    assert code == 1 and "needs (N, 16, 16, 3)" in err and not (tmp_path / "m.tflite").exists()
    # a run that is not complete
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run_dir, unfinished, ignore=shutil.ignore_patterns("exports"))
    manifest = json.loads((unfinished / "sensorium.json").read_text())
    manifest["status"] = "training"
    (unfinished / "sensorium.json").write_text(json.dumps(manifest))
    code, _, err = run_cli(sensorium_app, ["export", "--model", str(unfinished), "--format", "tflite"], capsys)
    assert code == 1 and "not complete" in err
    # a corrupt / truncated .tflite
    good = (exported / "model-float32.tflite").read_bytes()
    (tmp_path / "trunc.tflite").write_bytes(good[: len(good) // 3])
    (tmp_path / "junk.tflite").write_bytes(b"not a model at all")
    for name in ("trunc.tflite", "junk.tflite"):
        code, out, err = run_cli(classify_app, [str(ROOT / "assets/examples/digit-7.png"), "--model",
                                                str(tmp_path / name)], capsys)
        assert code == 1 and out == "" and err.count("\n") == 1 and name in err, err
    # the disk fills mid-write: one line, exit 1, and the good file that was there stays intact
    target = exported / "model-float32.tflite"
    before = target.read_bytes()
    real_write = Path.write_bytes

    def full_disk(self, data):
        if self.name.endswith("model-float32.tflite"):
            real_write(self, data[:100])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    code, _, err = run_cli(sensorium_app, ["export", "--model", str(run_dir), "--format", "tflite",
                                           "--overwrite"], capsys)
    monkeypatch.undo()
    assert code == 1 and "No space left on device" in err and err.strip().count("\n") == 0
    assert target.read_bytes() == before
    assert not [p for p in exported.iterdir() if p.name.startswith(".tmp")]


def test_parity_failure_rejects_the_file(run_dir, tmp_path, capsys, monkeypatch):
    """A converter that returns a model computing something else is caught by the parity check."""
    import keras

    from sensorium.export import tflite
    from sensorium.models.image import ImageClassifierSpec, build_image_classifier

    real_convert = tflite.convert

    def garbage(model, **kwargs):
        keras.utils.set_random_seed(123)
        other = build_image_classifier(ImageClassifierSpec(image_size=(16, 16), channels=1, widths=(8, 16)), 10)
        return real_convert(other, **kwargs)

    monkeypatch.setattr(tflite, "convert", garbage)
    out = tmp_path / "bad.tflite"
    code, _, err = run_cli(sensorium_app, ["export", "--model", str(run_dir), "--format", "tflite", "--out",
                                           str(out)], capsys)
    assert code == 1 and "parity check failed" in err and not out.exists()
    report = json.loads((tmp_path / "parity.json").read_text())["variants"]["none"]
    assert report["passed"] is False and report["agreement"] < 0.99


def test_model_outside_builtins_fails_naming_the_ops(tmp_path):
    import keras
    import tensorflow as tf

    from sensorium.export.tflite import convert
    from sensorium.runtime.errors import ModelError

    class Determinant(keras.layers.Layer):  # tf.linalg.det has no TFLite builtin kernel
        def call(self, x):
            m = tf.reshape(tf.cast(x, "float32")[:, :2, :2, 0], (-1, 2, 2))
            return tf.expand_dims(tf.linalg.det(m), -1)

    inp = keras.Input((4, 4, 3), dtype="uint8")
    model = keras.Model(inp, Determinant()(inp))
    with pytest.raises(ModelError, match=r"cannot express: MatrixDeterminant \(no file was written\)"):
        convert(model, input_shape=(4, 4, 3))


def test_a_rejected_variant_names_the_criterion_it_failed():
    """The parity error says what failed: agreement, a translator's chrF gap, or its placeholders (a
    translator with 0.96 agreement once read 'agreement 0.9565 is below 0.90')."""
    from sensorium.export.api import _why_rejected

    row = {"agreement": 0.85, "agreement_threshold": 0.9}
    assert _why_rejected(row) == "agreement 0.8500 < 0.9"
    translator = {"agreement": 0.9565, "agreement_threshold": 0.9, "chrf": 90.1, "keras_chrf": 96.2,
                  "chrf_tolerance": 1.0, "placeholders_preserved": 1.0}
    assert _why_rejected(translator).startswith("chrF 90.10 against Keras's 96.20, more than 1.0 apart")
    assert _why_rejected({**translator, "chrf": 95.9, "placeholders_preserved": 0.9}) == (
        "placeholders kept in 90.0% of the strings, fewer than Keras")
