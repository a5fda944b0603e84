"""The binary (positive vs negative) head of a sentiment model: a two-parameter logistic calibration of
the model's positive-vs-negative log-odds, fitted with balanced priors on held-out texts.

    p(positive) = sigmoid(scale * (log p(positive) - log p(negative)) + bias)

Balanced priors (each class weighs half) keep the training corpus's label mix (the tweets are 70%
negative among the polar ones) out of the binary decision. The runtime applies it
(`sensorium.runtime.sentiment.binary_probability`); the fitted values ride in the model's metadata.
`train sentiment` fits it at the end of training; for a run trained before, this fits it on the run's
own validation split (read as its config.json says) and records it, weights unchanged:

    python -m sensorium.pipelines.sentiment.calibration --model RUN
    sensorium export --model RUN --format tflite      # the exports carry the record
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.runtime.sentiment import binary_probability

log = logging.getLogger(__name__)

MIN_PER_CLASS = 10  # fewer polar texts of either class: no calibration (scale 1, bias 0)


def fit_binary_calibration(probs: np.ndarray, labels: np.ndarray, label_names: list[str], *,
                           l2: float = 1e-2, iterations: int = 50) -> dict[str, Any] | None:
    """{"scale", "bias", "negative", "positive"} fitted on the texts labelled positive or negative
    (probs (N, C), labels (N,) indices into `label_names`); None when the names lack either label or
    either class has fewer than MIN_PER_CLASS texts."""
    if "positive" not in label_names or "negative" not in label_names:
        return None
    pos, neg = label_names.index("positive"), label_names.index("negative")
    keep = (labels == pos) | (labels == neg)
    y = (labels[keep] == pos).astype(np.float64)  # (M,)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if min(n_pos, n_neg) < MIN_PER_CLASS:
        return None
    p = np.asarray(probs, np.float64)[keep]
    margin = np.log(np.maximum(p[:, pos], 1e-12)) - np.log(np.maximum(p[:, neg], 1e-12))  # (M,)
    x = np.stack([margin, np.ones_like(margin)], axis=1)  # (M, 2)
    w = np.where(y == 1, 0.5 / n_pos, 0.5 / n_neg)  # balanced: each class sums to 1/2
    theta = np.array([1.0, 0.0])
    prior = np.array([1.0, 0.0])  # the L2 penalty pulls towards the uncalibrated head
    for _ in range(iterations):  # Newton's method on the weighted log-loss
        z = np.clip(x @ theta, -60, 60)
        q = 1.0 / (1.0 + np.exp(-z))
        grad = x.T @ (w * (q - y)) + l2 * (theta - prior)
        hess = (x * (w * q * (1 - q))[:, None]).T @ x + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    scale, bias = float(theta[0]), float(theta[1])
    if not (np.isfinite(scale) and np.isfinite(bias)) or scale <= 0:
        log.warning("binary head: the calibration did not converge (scale %s, bias %s); left uncalibrated", scale, bias)
        return None
    return {"scale": round(scale, 6), "bias": round(bias, 6), "negative": n_neg, "positive": n_pos,
            "priors": "balanced"}


def binary_accuracy(probs: np.ndarray, labels: np.ndarray, label_names: list[str],
                    calibration: dict[str, Any] | None) -> float:
    """Balanced accuracy of the binary head on the positive and negative texts (for logs and tests)."""
    pos, neg = label_names.index("positive"), label_names.index("negative")
    keep = (labels == pos) | (labels == neg)
    cal = calibration or {"scale": 1.0, "bias": 0.0}
    p = binary_probability(np.asarray(probs)[keep], label_names, cal["scale"], cal["bias"])
    y = labels[keep] == pos
    return float(np.mean([np.mean(p[y] >= 0.5), np.mean(p[~y] < 0.5)]))


def record_binary_calibration(model: str | Path) -> dict[str, Any]:
    """Fit the binary head on the sentiment run `model`'s validation split, read by the run's own
    classifier (long texts as it reads them), and write it into the run's model.keras (atomically);
    returns the calibration written."""
    from sensorium.pipelines.common.artifacts import run_config
    from sensorium.pipelines.common.run_info import record_value
    from sensorium.pipelines.sentiment.config import SentimentConfig
    from sensorium.pipelines.sentiment.data import load_train_validation
    from sensorium.pipelines.sentiment.predict import load
    from sensorium.runtime.errors import DataError, ModelError

    def compute(info: dict[str, Any], artifact: Any) -> dict[str, Any]:
        cfg = run_config(artifact, SentimentConfig)
        if cfg is None:
            raise ModelError(f"{model}: no config.json to find its validation texts")
        classifier = load(artifact)
        _, val_split = load_train_validation(cfg.data, seed=cfg.seed, label_names=classifier.labels)
        probs = classifier.predict(val_split.items.texts)  # (N, C)
        cal = fit_binary_calibration(probs, val_split.items.labels, classifier.labels)
        if cal is None:
            raise DataError(f"{model}: its validation split has too few positive or negative texts "
                            f"(at least {MIN_PER_CLASS} of each) or its labels lack them")
        log.info("binary head: scale %.3f, bias %+.3f (balanced accuracy on validation %.4f, uncalibrated %.4f)",
                 cal["scale"], cal["bias"], binary_accuracy(probs, val_split.items.labels, classifier.labels, cal),
                 binary_accuracy(probs, val_split.items.labels, classifier.labels, None))
        return cal

    return dict(record_value(model, "sentiment", "binary_calibration", None, compute))


def main(argv: list[str] | None = None) -> int:
    from sensorium.pipelines.common.run_info import recorder_main

    def record(args: argparse.Namespace) -> str:
        cal = record_binary_calibration(args.model)
        return f"{args.model}: binary_calibration scale {cal['scale']:.3f} bias {cal['bias']:+.3f}"

    return recorder_main(argv, module="sensorium.pipelines.sentiment.calibration", doc=__doc__, task="sentiment",
                         options=lambda parser: None, record=record)


if __name__ == "__main__":
    sys.exit(main())
