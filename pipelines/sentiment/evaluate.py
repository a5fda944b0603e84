"""Evaluate a sentiment classifier on a data spec: accuracy, macro-F1, per-label P/R/F1, confusion matrix,
and, where the labels include positive and negative, the binary accuracy and macro-F1 on the
non-neutral texts (the measure for sets without neutral items, such as `builtin:imdb-reviews`, whose
three-way macro-F1 averages in a class with no items)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.rundir import RunDir
from sensorium.runtime.sentiment import TextClassifier

log = logging.getLogger(__name__)

TASK = TextClassifier.task


def polarity_accuracy(y: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict[str, Any] | None:
    """Positive-vs-negative accuracy and macro-F1 on the items labelled positive or negative, the model
    choosing between those two labels only (None when the labels lack either)."""
    lower = [label.lower() for label in labels]
    pos = next((i for i, name in enumerate(lower) if name in ("positive", "pos")), None)
    neg = next((i for i, name in enumerate(lower) if name in ("negative", "neg")), None)
    if pos is None or neg is None:
        return None
    keep = (y == pos) | (y == neg)
    if not keep.any():
        return None
    pred = np.where(probs[keep, pos] >= probs[keep, neg], pos, neg)
    truth = y[keep]
    f1 = []
    for label in (pos, neg):  # F1 = 2 TP / (2 TP + FP + FN)
        tp = int(np.sum((pred == label) & (truth == label)))
        wrong = int(np.sum((pred == label) != (truth == label)))
        f1.append(2 * tp / (2 * tp + wrong) if tp or wrong else 0.0)
    return {"binary_accuracy": float((pred == truth).mean()), "binary_macro_f1": float(np.mean(f1)),
            "binary_count": int(keep.sum())}


def evaluate(model_path: str | Path, data: str | None = None, *, out: str | Path | None = None,
             batch_size: int = 64, top_k: int = 5, require_complete: bool = True) -> dict[str, Any]:
    """Evaluate and write `metrics.json`, `plots/confusion_matrix.png` and `eval_predictions.tsv` into
    `out`, else where `evaluation.destination` says (a finished run: `RUN/evaluations/<data>/`; a bare
    model file: nowhere). Returns the metrics.json object."""
    from sensorium.pipelines.common.evaluation import evaluation_setup, write_classification_evaluation
    from sensorium.pipelines.common.metrics import classification_metrics
    from sensorium.pipelines.sentiment.config import SentimentConfig, TextDataConfig
    from sensorium.pipelines.sentiment.data import load_text_split
    from sensorium.pipelines.sentiment.predict import load

    setup = evaluation_setup(model_path, TASK, SentimentConfig, TextDataConfig, data, out,
                             require_complete=require_complete)
    classifier = load(setup.artifact)
    split = load_text_split(setup.data, setup.data_config, seed=setup.seed, default_split="test",
                            label_names=classifier.labels)
    probs = classifier.predict(split.items.texts)  # (N, C)
    y = split.items.labels
    metrics = classification_metrics(y, probs, classifier.labels, top_k=max(1, min(top_k, len(classifier.labels) - 1)))
    metrics.update(polarity_accuracy(y, probs, classifier.labels) or {})
    if split.failures:
        metrics["skipped"] = len(split.failures)
    result = {"task": TASK, "data": setup.data, "split": split.split, "count": int(len(y)), "metrics": metrics}
    if setup.dest is not None:
        write_classification_evaluation(setup.dest, result, classifier.labels, failures=split.failures,
                                        title=f"Confusion matrix: {setup.data} ({len(y)} texts)")
        pred = probs.argmax(-1)
        RunDir(setup.dest).write_text("eval_predictions.tsv", "id\tlabel\tprediction\n" + "".join(
            f"{i}\t{classifier.labels[a]}\t{classifier.labels[b]}\n" for i, a, b in zip(split.items.ids, y, pred)))
    return result
