"""The generative tasks end to end through `sensorium train|evaluate`, in-process: run directories, a
sample grid per epoch, anomaly calibration, metrics, --resume after an interrupt, and bad input.
Tiny models on the 30-image shapes folder (tests/conftest.py), 16x16 grayscale."""
from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from sensorium.apps import main as sensorium_app

TASKS = ("autoencoder", "vae", "gan")
TINY = ["--image-size", "16", "--channels", "1", "--latent-dim", "3", "--widths", "4,8", "--batch-size", "8",
        "--seed", "1", "--patience", "0"]
TASK_FLAGS = {"autoencoder": ["--noise-sigma", "0.3", "--classes", "square"], "vae": ["--beta", "1.0"], "gan": []}


def run_cli(argv, capsys):
    code = sensorium_app.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    """Evaluation at the end of training scores 16 generated images, with 8-image sample grids."""
    path = tmp_path_factory.mktemp("cfg") / "small.json"
    path.write_text(json.dumps({"samples": 16, "sample_grid": 8}))
    return path


@pytest.fixture(scope="module")
def runs(image_folder, small_config, tmp_path_factory):
    """Lazily trained complete run directories (2 epochs), one per task."""
    root = tmp_path_factory.mktemp("genruns")
    done = {}

    def get(task):
        if task not in done:
            out = root / task
            code = sensorium_app.main(["train", task, "--data", str(image_folder), "--out", str(out), "--epochs", "2",
                                       "--config", str(small_config), "-q", *TINY, *TASK_FLAGS[task]])
            assert code == 0
            done[task] = out
        return done[task]

    return get


@pytest.mark.parametrize("task", TASKS)
def test_train_writes_complete_run_directory(task, runs):
    from PIL import Image

    run = runs(task)
    manifest = json.loads((run / "sensorium.json").read_text())
    assert manifest["task"] == task and manifest["status"] == "complete"
    for name in ("config.json", "model.keras", "metrics.json", "history.csv", "model_card.md", "checkpoints/state.json",
                 "plots/training_curves.png", "splits/train.txt", "splits/validation.txt", "logs"):
        assert (run / name).exists(), name
    grids = sorted(p.name for p in (run / "samples").iterdir())
    assert grids == ["epoch-001.png", "epoch-002.png"]
    with Image.open(run / "samples/epoch-002.png") as img:
        assert img.format == "PNG" and img.width > 16
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == task and metrics["split"] == "test" and metrics["count"] > 0
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["latent_dim"] == 3 and config["model"]["image_size"] == [16, 16]
    history = json.loads((run / "checkpoints/state.json").read_text())["history"]
    losses = {"autoencoder": ["loss", "val_loss"], "vae": ["loss", "reconstruction_loss", "kl_loss", "val_loss"],
              "gan": ["d_loss", "g_loss", "val_d_loss"]}[task]
    assert all(len(history[k]) == 2 for k in losses)
    assert "## Evaluation" in (run / "model_card.md").read_text()


def test_autoencoder_classes_threshold_and_anomaly_metrics(runs, image_folder, tmp_path):
    from sensorium.pipelines.generative.evaluate import evaluate
    from sensorium.pipelines.generative.modeling import load_generative

    run = runs("autoencoder")
    train_ids = (run / "splits/train.txt").read_text().split()
    assert train_ids and all(i.startswith("square/") for i in train_ids)  # --classes square
    anomaly = json.loads((run / "anomaly.json").read_text())
    model = load_generative(run)
    assert model.anomaly_threshold == pytest.approx(anomaly["threshold"]) and anomaly["quantile"] == 0.99
    assert model.info["noise_sigma"] == 0.3
    result = evaluate(run, f"{image_folder}@test", out=tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text()) == result
    m = result["metrics"]
    assert {"mse", "psnr", "psnr_noisy", "psnr_denoised", "psnr_gain", "anomalous_fraction"} <= set(m)
    assert m["trained_classes"] == ["square"]
    # the AUROC is the model's own errors on the test split ranked against "is another class"
    from sensorium.pipelines.generative.data import load_images, take_pixels
    from sensorium.pipelines.generative.evaluate import auroc
    from sensorium.pipelines.image.config import DataConfig

    split = load_images(f"{image_folder}@test", DataConfig(spec=f"{image_folder}@test"), seed=1, image_size=(16, 16))
    test_pixels, test_labels = take_pixels(split)
    outside = np.asarray([split.labels[i] != "square" for i in test_labels])
    assert m["anomaly_auroc"] == pytest.approx(auroc(model.errors(test_pixels), outside))
    assert 0 <= m["psnr"] - 10 * math.log10(1 / m["mse"]) < 1.0  # the mean of per-image PSNRs (Jensen)
    assert set(m["per_class"]) == {"bar", "square"} and m["anomaly_outliers"] == m["per_class"]["bar"]["count"]
    pixels = np.zeros((3, 16, 16, 3), np.uint8)
    assert model.errors(pixels).shape == (3,) and model.reconstruct(pixels).shape == (3, 16, 16, 1)
    assert model.generator()(np.zeros((1, 3), "float32")).shape == (1, 16, 16, 1)


@pytest.mark.parametrize("task", TASKS)
def test_evaluate_json_prints_the_metrics(task, runs, image_folder, capsys):
    from sensorium.pipelines.common.rundir import evaluation_name

    run = runs(task)
    capsys.readouterr()  # what training printed, when this test trained the run
    recorded = (run / "metrics.json").read_bytes()
    code, out, err = run_cli(["evaluate", "--model", str(run), "--data", f"{image_folder}@validation", "--json"],
                             capsys)
    assert code == 0
    folder = run / "evaluations" / evaluation_name(f"{image_folder}@validation")  # never over training's records
    assert f"evaluation written to {folder}" in err and (run / "metrics.json").read_bytes() == recorded
    result = json.loads(out)
    assert result["task"] == task and result["split"] == "validation" and result["count"] > 0
    m = result["metrics"]
    if task in ("autoencoder", "vae"):
        assert 0 <= m["psnr"] - 10 * math.log10(1 / m["mse"]) < 1.0  # per-image mean; learning: tests/models
    if task == "vae":
        assert m["kl_loss"] >= 0 and m["elbo"] == pytest.approx(-(m["reconstruction_loss"] + m["kl_loss"]))
    if task in ("vae", "gan"):
        assert m["samples"] == 16 and 0 < m["mean_confidence"] <= 1
        assert set(m["class_distribution"]) == {str(d) for d in range(10)}  # the bundled MNIST classifier's
        assert sum(m["class_distribution"].values()) == pytest.approx(1.0)
        # two epochs of a tiny generator: its samples are further from the data than held-out real images
        assert m["frechet_distance"] > 10 * m["frechet_distance_real"] > 0
        assert (folder / "plots/generated.png").is_file() and (folder / "plots/class_distribution.png").is_file()
    assert json.loads((folder / "metrics.json").read_text()) == result
    code, out, _ = run_cli(["evaluate", "--model", str(run)], capsys)  # the text report
    assert code == 0 and {"autoencoder": "PSNR", "vae": "ELBO", "gan": "Fréchet"}[task] in out


def test_gan_resume_after_interrupt_restores_both_optimizers(image_folder, small_config, tmp_path, capsys,
                                                             interrupt_training):
    import keras

    from sensorium.pipelines.generative.modeling import register_models

    out = tmp_path / "gan"
    interrupt_training(1)
    code, _, err = run_cli(["train", "gan", "--data", str(image_folder), "--out", str(out), "--epochs", "2",
                            "--config", str(small_config), *TINY], capsys)
    assert code == 130 and "--resume" in err
    assert json.loads((out / "checkpoints/state.json").read_text())["epoch"] == 1
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch-001.png"]
    code, _, err = run_cli(["evaluate", "--model", str(out)], capsys)
    assert code == 1 and "not complete" in err and err.count("\n") == 1
    interrupt_training(None)
    code, stdout, err = run_cli(["train", "gan", "--out", str(out), "--resume"], capsys)
    assert code == 0, err
    manifest = json.loads((out / "sensorium.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed"] == 1
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch-001.png", "epoch-002.png"]
    steps = math.ceil(len((out / "splits/train.txt").read_text().split()) / 8)  # batch size 8
    register_models()
    last = keras.saving.load_model(out / "checkpoints/last.keras", safe_mode=True)
    # both optimizers went on counting from epoch 1's state: no optimizer started afresh
    assert int(last.d_optimizer.iterations) == int(last.g_optimizer.iterations) == 2 * steps


def test_bad_input_is_one_line(image_folder, tmp_path, capsys):
    from sensorium.pipelines.generative.modeling import load_generative
    from sensorium.runtime.errors import ModelError

    cases = [
        (["autoencoder", "--noise-sigma", "2"], 2, "model.noise_sigma must be in [0, 1]"),
        (["vae", "--beta", "-1"], 2, "model.beta must be >= 0"),
        (["gan", "--eval-samples", "0"], 2, "samples must be at least 2"),
        (["autoencoder", "--classes", "circle"], 1, "no class circle"),
    ]
    for i, (args, exit_code, message) in enumerate(cases):
        code, _, err = run_cli(["train", args[0], "--data", str(image_folder), "--out", str(tmp_path / f"r{i}"),
                                *TINY, *args[1:]], capsys)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == exit_code and len(errors) == 1 and message in errors[0] and "Traceback" not in err, err
    with pytest.raises(ModelError, match="is a 'image' model, not autoencoder / vae / gan"):
        load_generative(Path(str(resources.files("sensorium.assets"))) / "models" / "mnist")


def test_metric_helpers():
    from sensorium.pipelines.generative.data import take_pixels
    from sensorium.pipelines.generative.evaluate import auroc, frechet_distance
    from sensorium.pipelines.generative.images import image_grid, psnr, to_pixels
    from sensorium.pipelines.image.data import ImageSplit

    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, (20000, 1))
    b = rng.normal(2.0, 3.0, (20000, 1))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, b) == pytest.approx(2.0 ** 2 + 1 + 9 - 2 * 3, rel=0.05)  # 1-D closed form
    assert frechet_distance(rng.normal(size=(10, 64)), rng.normal(size=(12, 64))) > 0  # singular covariances
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1])) == 0.0
    assert auroc(np.ones(4), np.array([0, 1, 0, 1])) == 0.5
    x = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1).repeat(3, -1)
    split = ImageSplit("s", "test", ["a", "b"], [str(i) for i in range(100)], x=x, y=np.repeat([0, 1], 50))
    sub, labels = take_pixels(split, 20, seed=1)  # a seeded sample, not the (class-sorted) first 20
    assert len(sub) == 20 and set(labels) == {0, 1} and np.all(np.diff(sub[:, 0, 0, 0].astype(int)) > 0)
    assert np.array_equal(take_pixels(split, 20, seed=1)[0], sub)
    images = rng.random((5, 4, 6, 1)).astype("float32")
    assert to_pixels(images).shape == (5, 4, 6, 3) and to_pixels(images).dtype == np.uint8
    assert image_grid(images, columns=2).shape == (3 * 6 + 2, 2 * 8 + 2, 1)
    assert psnr(images, images)[0] == 100.0 and psnr(images, 1 - images).max() < 20


def test_latent_prior_mixture_fits_samples_and_round_trips():
    from sensorium.pipelines.generative.images import LatentPrior

    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.normal(-3.0, 0.1, (300, 2)), rng.normal(3.0, 0.1, (100, 2))])  # 3:1 clusters
    prior = LatentPrior.fit(codes, 2, seed=0)
    z = prior.sample(4000, seed=5)
    assert z.shape == (4000, 2) and z.dtype == np.float32
    assert np.mean(z[:, 0] > 0) == pytest.approx(0.25, abs=0.03)  # each cluster its share
    assert np.abs(np.abs(z).mean() - 3.0) < 0.1  # samples where the codes are, not around 0
    again = LatentPrior.from_info({"latent_dim": 2, "latent_prior": json.loads(json.dumps(prior.to_info()))})
    np.testing.assert_allclose(again.sample(10, seed=1), prior.sample(10, seed=1), rtol=1e-6)
    standard = LatentPrior.from_info({"latent_dim": 3})
    assert standard.kind == "standard" and standard.to_info() is None
    np.testing.assert_allclose(standard.sample(5, 2), np.random.default_rng(2).standard_normal((5, 3)), rtol=1e-6)


def test_vae_samples_from_its_fitted_prior(runs, tmp_path):
    from sensorium.pipelines.generative.images import LatentPrior
    from sensorium.pipelines.generative.modeling import load_generative

    run = runs("vae")
    stored = json.loads((run / "latent_prior.json").read_text())
    assert stored["kind"] == "gaussian_mixture" and stored["fitted_on"] == "training"
    model = load_generative(run)
    prior = LatentPrior.from_info(model.info)  # the model carries the mixture in its metadata
    assert prior.kind == "gaussian_mixture" and len(prior.weights) == len(stored["weights"])
    np.testing.assert_allclose(model.latents(8, seed=3), prior.sample(8, seed=3))
    assert not np.allclose(model.latents(8, seed=3), np.random.default_rng(3).standard_normal((8, 3)))
