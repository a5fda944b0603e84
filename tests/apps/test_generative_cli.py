"""`sensorium generate | denoise | anomaly` and `sensorium export` of generative runs, in-process.

Tiny models (16x16 grayscale, latent 3) trained for 1-2 epochs on the 30-image shapes folder
(tests/conftest.py), one run per task for the whole module."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sensorium.apps import main as sensorium_app

TINY = ["--image-size", "16", "--channels", "1", "--latent-dim", "3", "--widths", "4,8", "--batch-size", "8",
        "--seed", "1", "--patience", "0"]
TASK_FLAGS = {"autoencoder": ["--noise-sigma", "0.3", "--epochs", "2"], "vae": ["--epochs", "1"],
              "gan": ["--epochs", "1"]}


def run_cli(argv, capsys):
    capsys.readouterr()  # drop what came before (a fixture's training run)
    code = sensorium_app.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def runs(image_folder, tmp_path_factory):
    """Lazily trained complete run directories, one per task."""
    root = tmp_path_factory.mktemp("genruns")
    config = root / "small.json"
    config.write_text(json.dumps({"samples": 8, "sample_grid": 4}))
    done = {}

    def get(task):
        if task not in done:
            out = root / task
            code = sensorium_app.main(["train", task, "--data", str(image_folder), "--out", str(out),
                                       "--config", str(config), "-q", *TINY, *TASK_FLAGS[task]])
            assert code == 0
            done[task] = out
        return done[task]

    return get


@pytest.fixture(scope="module")
def inputs(image_folder, tmp_path_factory):
    """A good image, a corrupt file and a missing file."""
    root = tmp_path_factory.mktemp("inputs")
    corrupt = root / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = image_folder / "square" / "square00.png"
    return [good, corrupt, root / "missing.png"]


# === generate ===
@pytest.mark.parametrize("task", ["vae", "gan"])
def test_generate_grid_is_seeded_and_sized(task, runs, tmp_path, capsys):
    from PIL import Image

    run = runs(task)
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    code, out, err = run_cli(["generate", "--model", run, "--count", 10, "--out", a, "--seed", 3, "--json"], capsys)
    assert code == 0, err
    assert json_lines(out) == [{"input": str(run), "ok": True, "count": 10, "out": str(a)}]
    assert run_cli(["generate", "--model", run, "--count", 10, "--out", b, "--seed", 3, "-q"], capsys)[0] == 0
    assert run_cli(["generate", "--model", run, "--count", 10, "--out", c, "--seed", 4, "-q"], capsys)[0] == 0
    with Image.open(a) as img:
        assert img.format == "PNG" and img.size == (4 * 18 + 2, 3 * 18 + 2)  # 4 columns x 3 rows of 16 + 2 px
        grid_a = np.asarray(img)
    with Image.open(b) as img_b, Image.open(c) as img_c:
        assert np.array_equal(grid_a, np.asarray(img_b))
        assert not np.array_equal(grid_a, np.asarray(img_c))
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_generate_into_folder_writes_samples_too(runs, tmp_path, capsys):
    out_dir = tmp_path / "samples"  # and the model given as its .keras file
    code, out, err = run_cli(["generate", "--model", runs("gan") / "model.keras", "--count", 3, "--out", f"{out_dir}/"],
                             capsys)
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["grid.png", "sample-00001.png", "sample-00002.png",
                                                         "sample-00003.png"]
    assert str(out_dir / "grid.png") in out


@pytest.mark.parametrize("count, needle", [(0, "at least 1"), (-5, "at least 1"), (10_001, "limit of 10000")])
def test_generate_bad_count_is_a_usage_error(count, needle, runs, tmp_path, capsys):
    code, out, err = run_cli(["generate", "--model", runs("gan"), "--count", count, "--out", tmp_path / "g.png"],
                             capsys)
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and needle in err
    assert not (tmp_path / "g.png").exists()


def test_generate_with_an_autoencoder_or_classifier_is_one_line(runs, tmp_path, capsys):
    code, out, err = run_cli(["generate", "--model", runs("autoencoder"), "--count", 4, "--out", tmp_path / "g.png"],
                             capsys)
    assert code == 1 and out == ""
    assert err.strip().count("\n") == 0 and "autoencoder" in err and "vae / gan" in err
    from sensorium.runtime.predictor import bundled_model

    classifier = bundled_model("image")[1]  # the bundled MNIST classifier run
    code, out, err = run_cli(["generate", "--model", classifier, "--count", 4, "--out", tmp_path / "g.png"], capsys)
    assert code == 1 and out == "" and "'image' model" in err and err.strip().count("\n") == 0


# === denoise ===
def test_denoise_writes_model_size_pngs_and_reports_failures(runs, inputs, tmp_path, capsys):
    from PIL import Image

    out_dir = tmp_path / "denoised"
    code, out, err = run_cli(["denoise", *inputs, "--model", runs("autoencoder"), "--out", out_dir, "--json"], capsys)
    assert code == 1
    rows = json_lines(out)
    assert [r["input"] for r in rows] == [str(p) for p in inputs]
    assert rows[0] == {"input": str(inputs[0]), "ok": True, "output": str(out_dir / "square00.png")}
    assert rows[1]["ok"] is False and set(rows[1]) == {"input", "ok", "error"} and "not an image" in rows[1]["error"]
    assert rows[2]["ok"] is False and "no such file" in rows[2]["error"]
    with Image.open(out_dir / "square00.png") as img:
        assert img.size == (16, 16) and img.mode == "L"
    assert sorted(p.name for p in out_dir.iterdir()) == ["square00.png"]


def test_denoise_text_output_and_repeated_names(runs, image_folder, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "square00.png").write_bytes((image_folder / "bar" / "bar00.png").read_bytes())
    out_dir = tmp_path / "out"
    code, out, err = run_cli(["denoise", image_folder / "square" / "square00.png", other / "square00.png",
                              "--model", runs("autoencoder"), "--out", out_dir], capsys)
    assert code == 0, err
    assert out.splitlines() == [f"{image_folder / 'square' / 'square00.png'}\t{out_dir / 'square00.png'}",
                                f"{other / 'square00.png'}\t{out_dir / 'square00-2.png'}"]


# === anomaly ===
def test_anomaly_scores_against_the_runs_threshold(runs, inputs, image_folder, capsys):
    run = runs("autoencoder")
    threshold = json.loads((run / "anomaly.json").read_text())["threshold"]
    code, out, err = run_cli(["anomaly", *inputs, "--model", run, "--json"], capsys)
    assert code == 1
    rows = json_lines(out)
    assert [r["ok"] for r in rows] == [True, False, False]
    good = rows[0]
    assert set(good) == {"input", "ok", "score", "anomalous", "threshold"}
    assert good["threshold"] == pytest.approx(threshold, abs=1e-7)
    assert good["anomalous"] == (good["score"] > good["threshold"])
    assert set(rows[1]) == {"input", "ok", "error"} and "not an image" in rows[1]["error"]
    assert "no such file" in rows[2]["error"]

    # the threshold is the run's: change anomaly.json and the decision follows it
    saved = (run / "anomaly.json").read_text()
    try:
        (run / "anomaly.json").write_text(json.dumps({"threshold": good["score"] / 2}))
        code, out, _ = run_cli(["anomaly", inputs[0], "--model", run, "--json"], capsys)
        assert code == 0 and json_lines(out)[0]["anomalous"] is True
    finally:
        (run / "anomaly.json").write_text(saved)
    code, out, _ = run_cli(["anomaly", image_folder / "bar", "--model", run, "--threshold", 10], capsys)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 15 and all(line.split("\t")[2] == "normal" for line in lines)


def test_anomaly_needs_an_autoencoder(runs, inputs, capsys):
    code, out, err = run_cli(["anomaly", inputs[0], "--model", runs("gan")], capsys)
    assert code == 1 and out == "" and err.strip().count("\n") == 0 and "autoencoder" in err


# === export ===
@pytest.mark.parametrize("task", ["autoencoder", "vae", "gan"])
def test_export_round_trip(task, runs, tmp_path, capsys):
    import tensorflow as tf

    from sensorium.pipelines.generative.images import fixed_latents
    from sensorium.pipelines.generative.modeling import load_generative
    from sensorium.runtime.tflite import EdgeModel

    run = runs(task)
    model = load_generative(run)
    for fmt in ("saved_model", "tflite"):
        code, out, err = run_cli(["export", "--model", run, "--format", fmt, "--overwrite", "--json", "-q"], capsys)
        assert code == 0, err
        row = json_lines(out)[0]
        assert row["passed"] and row["agreement"] == 1.0 and row["max_abs_diff"] < 1e-3
    parity = json.loads((run / "exports" / "parity.json").read_text())
    assert {"saved_model", "none"} <= set(parity["variants"])
    assert "mean_abs_diff" in parity["variants"]["none"]

    edge = EdgeModel(run / "exports" / "model-float32.tflite")
    assert edge.manifest["task"] == task
    runner = edge.interpreter.get_signature_runner("serving_default")
    saved = tf.saved_model.load(str(run / "exports" / "saved_model")).signatures["serving_default"]
    if task in ("vae", "gan"):
        z = fixed_latents(5, model.latent_dim, seed=7)
        want = model.generate(z)
        assert edge.manifest["input"] == {"name": "latent", "dtype": "float32", "shape": [None, 3],
                                          "distribution": edge.manifest["input"]["distribution"]}
        np.testing.assert_allclose(runner(latent=z)["images"], want, atol=1e-4)
        np.testing.assert_allclose(saved(latent=tf.constant(z))["images"].numpy(), want, atol=1e-5)
    else:
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
        recon, errors = model.reconstruct(pixels), model.errors(pixels)
        assert edge.manifest["anomaly_threshold"] == pytest.approx(
            json.loads((run / "anomaly.json").read_text())["threshold"])
        got = runner(pixels=pixels)
        np.testing.assert_allclose(got["reconstruction"], recon, atol=1e-4)
        np.testing.assert_allclose(got["error"], errors, atol=1e-5)
        big = rng.integers(0, 256, (2, 40, 24, 3), dtype=np.uint8)  # the SavedModel resizes any size itself
        got = saved(pixels=tf.constant(big))
        np.testing.assert_allclose(got["error"].numpy(), model.errors(big), atol=1e-5)


def test_export_int8_is_refused(runs, capsys):
    code, out, err = run_cli(["export", "--model", runs("gan"), "--format", "tflite", "--quantize", "int8"], capsys)
    assert code == 2 and "int8 is not available" in err and err.strip().count("\n") == 0
