"""Evaluate an autoencoder, VAE or GAN on a data spec.

- autoencoder (and VAE): reconstruction MSE and PSNR on the images; with a noise sigma (the
  autoencoder's training sigma, or `noise_sigma=`), the PSNR of the noisy and of the denoised images
  against the clean ones; the autoencoder's anomaly threshold, the share of images above it, per
  class when the data has labels, and when the run was trained on some classes only (`--classes`),
  the AUROC of the reconstruction error separating the other classes from those;
- VAE: the ELBO (negative loss at beta 1) with its reconstruction (Bernoulli NLL, nats per image) and
  KL terms, one sampled z per image;
- VAE and GAN as generators: `samples` images from fixed latent vectors, scored by an image
  classifier of ours (default: the bundled MNIST model): mean top-1 confidence and the class
  distribution; and the Fréchet distance between the classifier's penultimate features of generated
  and real images, next to the Fréchet distance between two sets of real images (the training split
  against the evaluated one) for reference.

PSNR is the mean per-image PSNR in dB with peak 1.0 (images in [0, 1]); MSE is in [0, 1] pixel units.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.dataspec import parse_spec
from sensorium.runtime.errors import DataError, ModelError

log = logging.getLogger(__name__)

BUNDLED_CLASSIFIER = "models/mnist"  # under sensorium.assets


def evaluate(model_path: str | Path, data: str | None = None, *, out: str | Path | None = None, batch_size: int = 64,
             top_k: int = 5, samples: int | None = None, classifier: str | None = None,
             noise_sigma: float | None = None, require_complete: bool = True) -> dict[str, Any]:
    """Evaluate and write `metrics.json` (and for generators `plots/`) into `out`, else where
    `evaluation.destination` says (a finished run: `RUN/evaluations/<data>/`; a bare model file:
    nowhere); returns the metrics.json object. `samples` and `classifier` default to the run's config
    (1000, the bundled MNIST classifier); `top_k` is accepted for the common evaluate signature and unused."""
    from sensorium.pipelines.common.artifacts import inspect_artifact, run_config
    from sensorium.pipelines.common.evaluation import evaluation_setup
    from sensorium.pipelines.generative.config import CONFIGS, DataConfig
    from sensorium.pipelines.generative.data import keep_classes, load_images, take_pixels
    from sensorium.pipelines.generative.modeling import GENERATIVE_TASKS, load_generative

    artifact = inspect_artifact(model_path, require_complete=require_complete)
    if artifact.task not in GENERATIVE_TASKS:
        raise ModelError(f"{artifact.path} is a '{artifact.task}' model, not {' / '.join(GENERATIVE_TASKS)}")
    task = artifact.task
    setup = evaluation_setup(model_path, task, CONFIGS[task], DataConfig, data, out, require_complete=require_complete)
    cfg = run_config(setup.artifact, CONFIGS[task]) or CONFIGS[task]()
    model = load_generative(setup.artifact)
    samples = cfg.samples if samples is None else int(samples)
    if not 2 <= samples <= 100_000:
        raise DataError(f"samples must be between 2 and 100000, got {samples}")
    classifier = classifier or cfg.classifier
    batch_size = max(1, int(batch_size))

    spec = parse_spec(setup.data)
    split = load_images(spec, setup.data_config, seed=setup.seed, image_size=model.image_size)
    pixels, labels = take_pixels(split)
    metrics: dict[str, Any] = {}
    if task in ("autoencoder", "vae"):
        sigma = noise_sigma if noise_sigma is not None else (
            float(model.info.get("noise_sigma") or 0.0) if task == "autoencoder" else 0.0)
        metrics.update(reconstruction_metrics(model, pixels, batch_size=batch_size, noise_sigma=sigma,
                                              seed=setup.seed))
    if task == "autoencoder":
        metrics.update(anomaly_metrics(model, pixels, labels, split.labels, cfg.data.classes, batch_size=batch_size))
    if task == "vae":
        metrics.update(elbo_metrics(model, pixels, batch_size=batch_size))
    if task in ("vae", "gan"):
        if classifier == "off":
            metrics["samples"] = samples
        else:
            real = keep_classes(split, cfg.data.classes) if cfg.data.classes and split.y is not None else split
            real_pixels, _ = take_pixels(real, samples, seed=setup.seed)
            reference = _reference_pixels(spec, setup, model.image_size, cfg.data.classes, samples)
            metrics.update(generator_metrics(model, samples, real_pixels, reference, classifier=classifier,
                                             seed=setup.seed, batch_size=batch_size))
    if split.failures:
        metrics["skipped"] = len(split.failures)
    result = {"task": task, "data": spec.text, "split": split.split, "count": int(len(pixels)), "metrics": metrics}
    if setup.dest is not None:
        _write(setup.dest, result, model, samples, setup.seed)
    return result


# === Reconstruction ===
def reconstruction_metrics(model: Any, pixels: np.ndarray, *, batch_size: int, noise_sigma: float = 0.0,
                           seed: int = 0) -> dict[str, Any]:
    """mse, psnr (deterministic reconstructions) and, with `noise_sigma` > 0, the PSNR of the noisy input
    and of its reconstruction against the clean image (the noisy images are quantised to uint8 pixels,
    as files would be)."""
    from sensorium.pipelines.generative.images import add_noise, psnr, to_pixels

    clean = model.preprocess(pixels, batch_size)  # (N, H, W, C) in [0, 1]
    recon = model.reconstruct(pixels, batch_size)
    out: dict[str, Any] = {"mse": float(np.mean(np.square(clean - recon))), "psnr": float(np.mean(psnr(recon, clean)))}
    if noise_sigma > 0:
        noisy_pixels = to_pixels(add_noise(clean, noise_sigma, seed))
        noisy = model.preprocess(noisy_pixels, batch_size)
        denoised = model.reconstruct(noisy_pixels, batch_size)
        out.update(noise_sigma=float(noise_sigma), psnr_noisy=float(np.mean(psnr(noisy, clean))),
                   psnr_denoised=float(np.mean(psnr(denoised, clean))),
                   mse_denoised=float(np.mean(np.square(clean - denoised))))
        out["psnr_gain"] = out["psnr_denoised"] - out["psnr_noisy"]
    return out


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for the boolean `positive` labels (ties count half)."""
    from scipy.stats import rankdata

    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs positive and negative items")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def anomaly_metrics(model: Any, pixels: np.ndarray, labels: np.ndarray | None, label_names: list[str],
                    trained_classes: list[str] | None, *, batch_size: int) -> dict[str, Any]:
    """The anomaly threshold and the share of images above it (overall and per class), and with
    `trained_classes`, the AUROC of the score for the other classes against those."""
    errors = model.errors(pixels, batch_size)
    threshold = model.anomaly_threshold
    out: dict[str, Any] = {"anomaly_threshold": threshold, "mean_error": float(errors.mean())}
    if threshold is not None:
        out["anomalous_fraction"] = float(np.mean(errors > threshold))
    if labels is None or len(labels) != len(errors):
        return out
    per_class = {}
    for i, name in enumerate(label_names):
        mask = labels == i
        if mask.any():
            per_class[name] = {"count": int(mask.sum()), "mean_error": float(errors[mask].mean()),
                               **({"anomalous_fraction": float(np.mean(errors[mask] > threshold))}
                                  if threshold is not None else {})}
    out["per_class"] = per_class
    if trained_classes:
        inside = np.isin(labels, [label_names.index(c) for c in trained_classes if c in label_names])
        if inside.any() and (~inside).any():
            out.update(anomaly_auroc=auroc(errors, ~inside), anomaly_inliers=int(inside.sum()),
                       anomaly_outliers=int((~inside).sum()), trained_classes=list(trained_classes))
    return out


def elbo_metrics(model: Any, pixels: np.ndarray, *, batch_size: int) -> dict[str, Any]:
    """ELBO = -(reconstruction NLL + KL), nats per image, with one sampled z per image."""
    recs, kls = [], []
    for i in range(0, len(pixels), batch_size):
        rec, kl = model.model.loss_terms(pixels[i:i + batch_size], training=False)
        recs.append(np.asarray(rec))
        kls.append(np.asarray(kl))
    rec, kl = np.concatenate(recs).astype(np.float64), np.concatenate(kls).astype(np.float64)
    return {"elbo": float(-(rec + kl).mean()), "reconstruction_loss": float(rec.mean()), "kl_loss": float(kl.mean()),
            "elbo_per_pixel": float(-(rec + kl).mean() / (model.image_size[0] * model.image_size[1] * model.channels))}


# === Generators ===
@dataclass
class FeatureClassifier:
    """An image classifier of ours, with its penultimate features: `run(uint8 (N, h, w, 3))` ->
    (features (N, F), probabilities (N, classes))."""

    labels: list[str]
    model: Any
    source: str

    @classmethod
    def load(cls, path: str | Path | None) -> FeatureClassifier:
        import keras

        from sensorium.pipelines.common.artifacts import inspect_artifact, load_task_model

        if path is None:
            from importlib import resources

            path = Path(str(resources.files("sensorium.assets"))) / BUNDLED_CLASSIFIER
        artifact = inspect_artifact(path)
        if artifact.task != "image" or artifact.kind not in ("run", "keras"):
            raise ModelError(f"{path}: the classifier must be an image run directory or .keras file")
        model, meta = load_task_model(artifact.keras_path, "image")
        labels = artifact.labels or meta.get("labels")
        try:
            head = model.get_layer("head")
        except ValueError:
            raise ModelError(f"{path}: no classification head layer to take features from") from None
        features = head.input  # (B, h, w, F) or (B, F)
        if len(features.shape) == 4:
            features = keras.layers.GlobalAveragePooling2D(name="features")(features)  # (B, F)
        return cls(list(labels), keras.Model(model.input, [features, model.output]), str(path))

    def run(self, pixels: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        feats, probs = [], []
        for i in range(0, len(pixels), batch_size):
            f, p = self.model(pixels[i:i + batch_size], training=False)
            feats.append(np.asarray(f, np.float64))
            probs.append(np.asarray(p, np.float64))
        return np.concatenate(feats), np.concatenate(probs)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, F) and (M, F):
    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

    Tr((S_a S_b)^(1/2)) is computed as the sum of the square roots of the eigenvalues of the
    symmetric PSD matrix S_a^(1/2) S_b S_a^(1/2) (same eigenvalues), which stays exact and real when
    the covariances are singular (fewer items than features)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("the Fréchet distance needs at least 2 items per set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T  # S_a^(1/2)
    middle = root_a @ cov_b @ root_a
    eig = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    trace_sqrt = float(np.sum(np.sqrt(np.clip(eig, 0.0, None))))
    value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt)
    return max(value, 0.0)


def generator_metrics(model: Any, samples: int, real_pixels: np.ndarray, reference_pixels: np.ndarray | None, *,
                      classifier: str | None = None, seed: int = 0, batch_size: int = 256) -> dict[str, Any]:
    """`samples` generated images (latent vectors of `seed` from the model's prior) scored by the classifier, and the
    Fréchet distances (generated vs real; real reference vs real) on its penultimate features. Real
    images go through the generative model's own preprocessing first, as its training data did."""
    from sensorium.pipelines.generative.images import to_pixels

    scorer = FeatureClassifier.load(classifier)
    generated = to_pixels(model.generate(model.latents(samples, seed), batch_size))
    gen_features, probs = scorer.run(generated)
    top = probs.argmax(1)
    counts = np.bincount(top, minlength=len(scorer.labels))
    fractions = {label: float(counts[i] / samples) for i, label in enumerate(scorer.labels)}
    out: dict[str, Any] = {
        "samples": samples, "classifier": scorer.source, "mean_confidence": float(probs.max(1).mean()),
        "class_distribution": fractions, "min_class_fraction": float(min(fractions.values())),
    }
    real = to_pixels(model.preprocess(real_pixels, batch_size))
    real_features, _ = scorer.run(real)
    out["frechet_distance"] = frechet_distance(gen_features, real_features)
    out["frechet_real_count"] = int(len(real))
    if reference_pixels is not None and len(reference_pixels) >= 2:
        ref_features, _ = scorer.run(to_pixels(model.preprocess(reference_pixels, batch_size)))
        out["frechet_distance_real"] = frechet_distance(ref_features, real_features)
        out["frechet_reference_count"] = int(len(reference_pixels))
    return out


def _reference_pixels(spec: Any, setup: Any, image_size: tuple[int, int], classes: list[str] | None,
                      count: int) -> np.ndarray | None:
    """Up to `count` real images of the source's other split (train, or test when train is evaluated):
    the reference for the Fréchet distance of real images."""
    from sensorium.pipelines.generative.data import keep_classes, load_images, take_pixels

    other = "test" if (spec.split or "test").startswith("train") else "train"
    try:
        split = load_images(f"{spec.source}@{other}", setup.data_config, seed=setup.seed, image_size=image_size)
        if classes and split.y is not None:
            split = keep_classes(split, classes)
        return take_pixels(split, count, seed=setup.seed + 1)[0]
    except DataError as exc:
        log.warning("no real reference images for the Fréchet distance: %s", exc)
        return None


# === Output ===
def _write(dest: Path, result: dict[str, Any], model: Any, samples: int, seed: int) -> None:
    """metrics.json, and for generators plots/generated.png (up to 100 of the scored samples) and
    plots/class_distribution.png."""
    from sensorium.pipelines.common.rundir import RunDir

    target = RunDir(dest)
    target.write_json("metrics.json", result)
    if model.task in ("vae", "gan"):
        from sensorium.pipelines.generative.images import save_grid

        shown = min(samples, 100)
        save_grid(target.sub("plots") / "generated.png", model.generate(model.latents(shown, seed)), scale=2)
        dist = result["metrics"].get("class_distribution")
        if dist:
            from sensorium.pipelines.common.reports import plot_bars

            plot_bars(dist, target.sub("plots") / "class_distribution.png",
                      title=f"Classes of {samples} generated images", ylabel="fraction")


def format_report(result: dict[str, Any]) -> str:
    """The metrics of a generative evaluation as a few aligned lines (the CLI's text output)."""
    m = result["metrics"]
    lines = []
    if "mse" in m:
        lines.append(f"reconstruction  MSE {m['mse']:.5f}  PSNR {m['psnr']:.2f} dB")
    if "psnr_noisy" in m:
        lines.append(f"denoising       sigma {m['noise_sigma']:g}: PSNR noisy {m['psnr_noisy']:.2f} dB -> denoised "
                     f"{m['psnr_denoised']:.2f} dB ({m['psnr_gain']:+.2f} dB)")
    if "elbo" in m:
        lines.append(f"ELBO            {m['elbo']:.2f} nats/image  (reconstruction {m['reconstruction_loss']:.2f}, "
                     f"KL {m['kl_loss']:.2f})")
    if m.get("anomaly_threshold") is not None:
        lines.append(f"anomaly         threshold {m['anomaly_threshold']:.5f}: {m.get('anomalous_fraction', 0):.1%} of "
                     "the images above it")
    if "anomaly_auroc" in m:
        lines.append(f"                AUROC {m['anomaly_auroc']:.4f} for the other classes ({m['anomaly_outliers']}) "
                     f"against the trained ones ({m['anomaly_inliers']})")
    if "mean_confidence" in m:
        dist = "  ".join(f"{k}:{v:.1%}" for k, v in m["class_distribution"].items())
        lines.append(f"generated       {m['samples']} images: mean classifier confidence {m['mean_confidence']:.3f}, "
                     f"smallest class {m['min_class_fraction']:.1%}")
        lines.append(f"                classes {dist}")
        ref = (f" (real vs real: {m['frechet_distance_real']:.3f})" if "frechet_distance_real" in m else "")
        lines.append(f"Fréchet dist.   {m['frechet_distance']:.3f}{ref}")
    return "\n".join(lines)
