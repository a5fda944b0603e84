"""Sentiment quality and speed: our model against the VADER lexicon baseline on the same test split.

    python tests/benchmarks/sentiment_benchmark.py [--model RUN_DIR] [--data SPEC] [--boot 2000]

Prints macro-F1 and accuracy of both, a paired bootstrap 95% interval of the macro-F1 difference
(the same resampled texts score both systems), the positive-vs-negative accuracy on the non-neutral
texts, and latency of the Keras model and of the exported .tflite files on the edge runner (each
file's `--labels binary` answer to one text too, with the lexicon expert and without).
VADER (vaderSentiment, PyPI) labels a text positive when its compound score is >= 0.05, negative
when <= -0.05, else neutral (the thresholds its authors recommend); for the binary comparison it
goes by the sign of compound, a zero going to the larger of the two classes.
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


def macro_f1(y: np.ndarray, pred: np.ndarray, num_classes: int) -> float:
    cm = np.bincount(y * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    tp = np.diag(cm).astype(float)
    precision = np.divide(tp, cm.sum(0), out=np.zeros_like(tp), where=cm.sum(0) > 0)
    recall = np.divide(tp, cm.sum(1), out=np.zeros_like(tp), where=cm.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    return float(f1.mean())


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """scikit-learn's ROC AUC of `score` (N,) for 0/1 labels `y` (N,); nan without both classes (a resample)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score)) if 0 < int(y.sum()) < len(y) else float("nan")


def paired_difference(y: np.ndarray, a: np.ndarray, b: np.ndarray, metric, boots: int, seed: int = 0
                      ) -> tuple[float, float, float]:
    """(difference, low, high): metric(y, a) - metric(y, b) and its percentile 95% interval over `boots`
    resamples of the items (the same resampled items score both)."""
    rng = np.random.default_rng(seed)
    diffs = np.empty(boots)
    for i in range(boots):
        idx = rng.integers(0, len(y), len(y))
        diffs[i] = metric(y[idx], a[idx]) - metric(y[idx], b[idx])
    low, high = np.percentile(diffs, [2.5, 97.5])
    return metric(y, a) - metric(y, b), float(low), float(high)


def paired_bootstrap(y: np.ndarray, a: np.ndarray, b: np.ndarray, num_classes: int, boots: int, seed: int = 0
                     ) -> tuple[float, float, float]:
    """(difference, low, high): macro-F1(a) - macro-F1(b) and its percentile 95% interval."""
    return paired_difference(y, a, b, lambda t, p: macro_f1(t, p, num_classes), boots, seed)


def vader_labels(texts: list[str], labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(3-way predictions as label indices, compound scores)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    compound = np.asarray([analyzer.polarity_scores(t)["compound"] for t in texts])
    pos, neg, neu = labels.index("positive"), labels.index("negative"), labels.index("neutral")
    pred = np.where(compound >= 0.05, pos, np.where(compound <= -0.05, neg, neu))
    return pred, compound


def binary_latency(tfl: Path, texts: list[str]) -> dict[str, float]:
    """Median milliseconds of one `--labels binary` call on one text (the lexicon expert the model records
    included, then `fusion none`), 1 interpreter thread, as the CLI answers a single text; {} for a model
    without positive and negative labels."""
    from sensorium.runtime.errors import UsageError
    from sensorium.runtime.sentiment import TextClassifier

    out = {}
    for fusion in ("lexicon", "none"):
        try:
            clf = TextClassifier.from_tflite(tfl, num_threads=1).configure(label_set="binary", fusion=fusion)
        except UsageError:
            return {}
        clf(texts[:8])
        times = []
        for text in texts:
            t0 = time.perf_counter()
            clf([text])
            times.append(time.perf_counter() - t0)
        out[f"ms_binary_{fusion}_single_text_median_1_thread"] = 1000 * float(np.median(times))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run directory (default: the bundled sentiment model)")
    parser.add_argument("--data", default="builtin:tweets@test")
    parser.add_argument("--boot", type=int, default=2000)
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args()

    from sensorium.pipelines.common.artifacts import inspect_artifact, run_config
    from sensorium.pipelines.sentiment.config import SentimentConfig
    from sensorium.pipelines.sentiment.data import load_text_split
    from sensorium.pipelines.sentiment.evaluate import polarity_accuracy
    from sensorium.pipelines.sentiment.predict import load
    from sensorium.runtime.predictor import bundled_model
    from sensorium.runtime.sentiment import TextClassifier

    model = Path(args.model) if args.model else bundled_model("sentiment")[1]
    artifact = inspect_artifact(model)
    cfg = run_config(artifact, SentimentConfig) or SentimentConfig()
    clf = load(artifact)
    split = load_text_split(args.data, cfg.data, seed=cfg.seed, default_split="test", label_names=clf.labels)
    texts, y, labels = split.items.texts, split.items.labels, clf.labels
    t0 = time.perf_counter()
    probs = clf.predict(texts)
    keras_s = time.perf_counter() - t0
    ours = probs.argmax(-1)
    t0 = time.perf_counter()
    vader, compound = vader_labels(texts, labels)
    vader_s = time.perf_counter() - t0
    c = len(labels)
    diff, low, high = paired_bootstrap(y, ours, vader, c, args.boot)
    pos, neg = labels.index("positive"), labels.index("negative")
    keep = (y == pos) | (y == neg)
    # VADER's own choice between the two: the sign of its compound score; a text without sentiment
    # words (compound 0) goes to the larger of the two classes, which favours VADER.
    tie = pos if (y == pos).sum() > (y == neg).sum() else neg
    vader_binary = float((np.where(compound[keep] > 0, pos, np.where(compound[keep] < 0, neg, tie)) == y[keep]).mean())
    ours_binary = polarity_accuracy(y, probs, labels)["binary_accuracy"]
    result = {
        "data": args.data, "count": int(len(y)), "model": str(model),
        "ours": {"macro_f1": macro_f1(y, ours, c), "accuracy": float((ours == y).mean()), "binary_accuracy": ours_binary},
        "vader": {"macro_f1": macro_f1(y, vader, c), "accuracy": float((vader == y).mean()),
                  "binary_accuracy": vader_binary},
        "macro_f1_difference": {"value": diff, "ci95": [low, high], "bootstrap_resamples": args.boot},
        "binary_count": int(keep.sum()),
        "speed": {"keras_ms_per_text_batched": 1000 * keras_s / len(texts), "vader_ms_per_text": 1000 * vader_s / len(texts)},
    }
    exports = (artifact.run.path / "exports") if artifact.run is not None else None
    for tfl in sorted(exports.glob("*.tflite")) if exports and exports.is_dir() else []:
        edge = TextClassifier.from_tflite(tfl)
        sample = texts[:500]
        edge.predict(sample[:8])
        t0 = time.perf_counter()
        edge_probs = edge.predict(sample)
        batched = 1000 * (time.perf_counter() - t0) / len(sample)
        singles = []
        for text in sample[:200]:
            t1 = time.perf_counter()
            edge.predict([text])
            singles.append(time.perf_counter() - t1)
        result["speed"][tfl.name] = {"ms_per_text_batched": batched, "ms_single_text_median": 1000 * float(np.median(singles)),
                                     "size_kib": tfl.stat().st_size / 1024,
                                     "agreement_with_keras_500": float((edge_probs.argmax(-1) == ours[:500]).mean()),
                                     **binary_latency(tfl, sample[:200])}
    print(json.dumps(result, indent=2))
    o, v = result["ours"], result["vader"]
    print(f"\nmacro-F1 ours {o['macro_f1']:.4f} vs VADER {v['macro_f1']:.4f}: +{100 * diff:.2f} points, "
          f"95% CI [{100 * low:.2f}, {100 * high:.2f}] ({args.boot} paired resamples of {len(y)} texts)", file=sys.stderr)
    print(f"positive-vs-negative accuracy ours {o['binary_accuracy']:.4f} vs VADER {v['binary_accuracy']:.4f} "
          f"on {int(keep.sum())} non-neutral texts", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
