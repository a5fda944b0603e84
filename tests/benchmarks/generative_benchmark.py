"""Generative quality bars: anomaly AUROC against PCA, denoising PSNR gain, and VAE / GAN sample quality.

    python tests/benchmarks/generative_benchmark.py [--anomaly RUN] [--denoise RUN] [--vae RUN] [--gan RUN]
        [--data builtin:mnist@test] [--samples 1000] [--sigma 0.3] [--seed 0] [--json FILE]

Every section is optional (give the run directories to measure):

- anomaly: an autoencoder trained on some classes only (`--classes 0,...,8`). The held-out images of
  those classes are the inliers, all held-out images of the other classes (the 9s) the outliers; the
  score is the per-image reconstruction MSE. Baseline: sklearn PCA fitted on the autoencoder's own
  training images (the same split and class filter, rebuilt from its config and seed), in the same
  pixel space (the model's preprocessing: grayscale 28x28 in [0, 1]), scoring by PCA reconstruction
  MSE; n_components by 90% explained variance and equal to the autoencoder's latent size. AUROC by
  sklearn.metrics.roc_auc_score. Bar: ours above PCA.
- denoise: a denoising autoencoder on all held-out images, Gaussian noise `--sigma` clipped to [0, 1]
  (and quantised to uint8, as in pipelines/generative/evaluate.reconstruction_metrics, which does
  the work): mean per-image PSNR of denoised and of noisy vs clean. Bar: +6 dB.
- vae / gan: `--samples` images from fixed seeded latent vectors, scored by the bundled MNIST
  classifier (evaluate.generator_metrics): mean top-1 confidence (bar >= 0.9), class distribution
  (bar: every class >= 5%), Fréchet distance on its penultimate features vs `--samples` real held-out
  images, next to real-vs-real: those against `--samples` other (disjoint) held-out images. The real
  images' own classifier confidence is printed for context.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

CONFIDENCE_BAR = 0.9
CLASS_SHARE_BAR = 0.05
PSNR_GAIN_BAR = 6.0


def _load(run: str):
    from sensorium.pipelines.common.artifacts import inspect_artifact, run_config
    from sensorium.pipelines.generative.config import CONFIGS
    from sensorium.pipelines.generative.modeling import load_generative

    artifact = inspect_artifact(run)
    model = load_generative(artifact)
    cfg = run_config(artifact, CONFIGS[model.task]) or CONFIGS[model.task]()
    return model, cfg


def _held_out(spec: str, cfg, seed: int, image_size):
    from sensorium.pipelines.generative.data import load_images, take_pixels

    split = load_images(spec, cfg.data, seed=seed, image_size=image_size)
    pixels, labels = take_pixels(split)
    return split, pixels, labels


def anomaly(run: str, data: str, batch_size: int) -> dict:
    from sklearn.decomposition import PCA
    from sklearn.metrics import roc_auc_score

    from sensorium.pipelines.generative.data import load_train_images, take_pixels

    model, cfg = _load(run)
    classes = cfg.data.classes
    if model.task != "autoencoder" or not classes:
        raise SystemExit(f"{run}: the anomaly section needs an autoencoder trained with --classes")
    split, pixels, labels = _held_out(data, cfg, cfg.seed, model.image_size)
    inside = np.isin(labels, [split.labels.index(c) for c in classes])
    outlier = ~inside
    t0 = time.perf_counter()
    ours = model.errors(pixels, batch_size)
    ours_s = time.perf_counter() - t0
    out = {"run": run, "trained_classes": classes, "inliers": int(inside.sum()), "outliers": int(outlier.sum()),
           "outlier_classes": sorted({split.labels[i] for i in np.unique(labels[outlier])}),
           "auroc_ours": float(roc_auc_score(outlier, ours)), "latent_dim": model.latent_dim,
           "score_seconds_ours": ours_s}

    train, _ = load_train_images(cfg.data, seed=cfg.seed, image_size=model.image_size)
    train_pixels, train_labels = take_pixels(train)
    x_train = model.preprocess(train_pixels, batch_size).reshape(len(train_pixels), -1).astype(np.float64)
    x_test = model.preprocess(pixels, batch_size).reshape(len(pixels), -1).astype(np.float64)
    out["pca_train_images"] = int(len(x_train))
    out["pca_train_classes"] = sorted({split.labels[i] for i in np.unique(train_labels)}) if train_labels is not None \
        else None
    out["pixel_range"] = [float(x_train.min()), float(x_train.max())]
    out["pca"] = {}
    for name, n in (("variance_0.9", 0.9), ("latent_dim", model.latent_dim)):
        pca = PCA(n_components=n, svd_solver="full", random_state=0).fit(x_train)
        recon = pca.inverse_transform(pca.transform(x_test))
        scores = np.mean(np.square(x_test - recon), axis=1)
        out["pca"][name] = {"n_components": int(pca.n_components_),
                            "explained_variance": float(pca.explained_variance_ratio_.sum()),
                            "auroc": float(roc_auc_score(outlier, scores))}
    best_pca = max(v["auroc"] for v in out["pca"].values())
    out["beats_pca"] = bool(out["auroc_ours"] > best_pca)
    # the pipeline's own AUROC (rank formula in evaluate.py) as a cross-check of the sklearn figure
    from sensorium.pipelines.generative.evaluate import auroc
    out["auroc_ours_pipeline"] = auroc(ours, outlier)
    return out


def denoise(run: str, data: str, sigma: float, seed: int, batch_size: int) -> dict:
    from sensorium.pipelines.generative.evaluate import reconstruction_metrics

    model, cfg = _load(run)
    if model.task != "autoencoder":
        raise SystemExit(f"{run}: the denoise section needs an autoencoder")
    _, pixels, _ = _held_out(data, cfg, cfg.seed, model.image_size)
    m = reconstruction_metrics(model, pixels, batch_size=batch_size, noise_sigma=sigma, seed=seed)
    return {"run": run, "trained_sigma": model.info.get("noise_sigma"), "images": int(len(pixels)), **m,
            "meets_bar": bool(m["psnr_gain"] >= PSNR_GAIN_BAR)}


def generation(run: str, data: str, samples: int, seed: int, batch_size: int) -> dict:
    from sensorium.pipelines.generative.evaluate import FeatureClassifier, generator_metrics
    from sensorium.pipelines.generative.images import to_pixels

    model, cfg = _load(run)
    if model.task not in ("vae", "gan"):
        raise SystemExit(f"{run}: a vae or gan run is needed, got {model.task}")
    _, pixels, _ = _held_out(data, cfg, cfg.seed, model.image_size)
    if len(pixels) < 2 * samples:
        raise SystemExit(f"{data}: {len(pixels)} images, fewer than 2 x {samples} for disjoint real sets")
    order = np.random.default_rng(seed).permutation(len(pixels))
    real, reference = pixels[np.sort(order[:samples])], pixels[np.sort(order[samples:2 * samples])]
    t0 = time.perf_counter()
    m = generator_metrics(model, samples, real, reference, seed=seed, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    scorer = FeatureClassifier.load(None)
    _, probs = scorer.run(to_pixels(model.preprocess(real, batch_size)))
    m["real_mean_confidence"] = float(probs.max(1).mean())
    m["classifier"] = os.path.relpath(m["classifier"]) if os.path.isabs(m["classifier"]) else m["classifier"]
    return {"run": run, "task": model.task, "latent_dim": model.latent_dim, "seconds": seconds, **m,
            "meets_confidence_bar": bool(m["mean_confidence"] >= CONFIDENCE_BAR),
            "meets_class_bar": bool(m["min_class_fraction"] >= CLASS_SHARE_BAR)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anomaly", metavar="RUN", help="autoencoder trained with --classes (e.g. 0..8)")
    parser.add_argument("--denoise", metavar="RUN", help="denoising autoencoder (--noise-sigma)")
    parser.add_argument("--vae", metavar="RUN")
    parser.add_argument("--gan", metavar="RUN")
    parser.add_argument("--data", default="builtin:mnist@test", help="held-out images")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--sigma", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args()
    if not any((args.anomaly, args.denoise, args.vae, args.gan)):
        parser.error("give at least one of --anomaly, --denoise, --vae, --gan")

    result: dict = {"data": args.data, "seed": args.seed}
    if args.anomaly:
        a = result["anomaly"] = anomaly(args.anomaly, args.data, args.batch_size)
        print(f"anomaly   {a['run']}: {a['inliers']} inliers ({','.join(a['trained_classes'])}) vs "
              f"{a['outliers']} outliers ({','.join(a['outlier_classes'])})")
        print(f"          AUROC ours {a['auroc_ours']:.4f}  (pipeline formula {a['auroc_ours_pipeline']:.4f}, "
              f"latent {a['latent_dim']})")
        for name, p in a["pca"].items():
            print(f"          AUROC PCA  {p['auroc']:.4f}  ({name}: {p['n_components']} components, "
                  f"{p['explained_variance']:.1%} variance; fitted on {a['pca_train_images']} training images)")
        print(f"          bar (ours > PCA): {'MET' if a['beats_pca'] else 'NOT MET'}")
    if args.denoise:
        d = result["denoise"] = denoise(args.denoise, args.data, args.sigma, args.seed, args.batch_size)
        print(f"denoise   {d['run']} (trained sigma {d['trained_sigma']}), {d['images']} images, sigma "
              f"{d['noise_sigma']:g}: PSNR noisy {d['psnr_noisy']:.2f} dB -> denoised {d['psnr_denoised']:.2f} dB "
              f"({d['psnr_gain']:+.2f} dB); clean reconstruction {d['psnr']:.2f} dB")
        print(f"          bar (+{PSNR_GAIN_BAR:g} dB): {'MET' if d['meets_bar'] else 'NOT MET'}")
    for key in ("vae", "gan"):
        run = getattr(args, key)
        if not run:
            continue
        g = result[key] = generation(run, args.data, args.samples, args.seed, args.batch_size)
        dist = "  ".join(f"{k}:{v:.1%}" for k, v in g["class_distribution"].items())
        print(f"{key:<9} {g['run']}: {g['samples']} samples (latent {g['latent_dim']}, seed {args.seed})")
        print(f"          mean confidence {g['mean_confidence']:.3f} (real digits: {g['real_mean_confidence']:.3f}); "
              f"smallest class {g['min_class_fraction']:.1%}")
        print(f"          classes {dist}")
        print(f"          Fréchet distance {g['frechet_distance']:.3f} vs {g['frechet_real_count']} real; "
              f"real vs real {g['frechet_distance_real']:.3f} ({g['frechet_reference_count']} other real)")
        print(f"          bars: confidence >= {CONFIDENCE_BAR:g} {'MET' if g['meets_confidence_bar'] else 'NOT MET'}; "
              f"every class >= {CLASS_SHARE_BAR:.0%} {'MET' if g['meets_class_bar'] else 'NOT MET'}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
