"""Evaluate a sentiment classifier on a data spec: accuracy, macro-F1, per-label P/R/F1, confusion matrix,
and, where the labels include positive and negative, the binary accuracy on the non-neutral texts."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.artifacts import inspect_artifact, require_task, run_config
from sensorium.pipelines.common.errors import UsageError
from sensorium.pipelines.common.rundir import RunDir

log = logging.getLogger(__name__)

TASK = "sentiment"


def polarity_accuracy(y: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict[str, Any] | None:
    """Positive-vs-negative accuracy on the items labelled positive or negative, the model choosing
    between those two labels only (None when the labels lack either)."""
    lower = [label.lower() for label in labels]
    pos = next((i for i, name in enumerate(lower) if name in ("positive", "pos")), None)
    neg = next((i for i, name in enumerate(lower) if name in ("negative", "neg")), None)
    if pos is None or neg is None:
        return None
    keep = (y == pos) | (y == neg)
    if not keep.any():
        return None
    pred = np.where(probs[keep, pos] >= probs[keep, neg], pos, neg)
    return {"binary_accuracy": float((pred == y[keep]).mean()), "binary_count": int(keep.sum())}


def evaluate(model_path: str | Path, data: str | None = None, *, out: str | Path | None = None,
             batch_size: int = 64, top_k: int = 5, require_complete: bool = True) -> dict[str, Any]:
    """Evaluate and write `metrics.json` + `plots/confusion_matrix.png` (into the run directory, or
    `out`). Returns the metrics.json object."""
    from sensorium.pipelines.common.metrics import classification_metrics
    from sensorium.pipelines.common.reports import plot_confusion_matrix
    from sensorium.pipelines.sentiment.config import SentimentConfig, TextDataConfig
    from sensorium.pipelines.sentiment.data import load_text_split
    from sensorium.pipelines.sentiment.predict import TextClassifier

    artifact = require_task(inspect_artifact(model_path, require_complete=require_complete), TASK)
    classifier = TextClassifier.from_artifact(artifact)
    run_cfg = run_config(artifact, SentimentConfig)
    seed, data_cfg = (run_cfg.seed, run_cfg.data) if run_cfg is not None else (42, TextDataConfig())
    data = data or (run_cfg.data.spec if run_cfg is not None else None)
    if not data:
        raise UsageError("--data is required for a model outside a run directory")
    split = load_text_split(data, data_cfg, seed=seed, default_split="test", label_names=classifier.labels)
    probs = classifier.predict(split.items.texts)  # (N, C)
    y = split.items.labels
    metrics = classification_metrics(y, probs, classifier.labels, top_k=min(top_k, len(classifier.labels)))
    binary = polarity_accuracy(y, probs, classifier.labels)
    if binary:
        metrics.update(binary)
    if split.failures:
        metrics["skipped"] = len(split.failures)
    result = {"task": TASK, "data": data, "split": split.split, "count": int(len(y)), "metrics": metrics}
    dest = Path(out) if out else (artifact.run.path if artifact.run is not None else None)
    if dest is not None:
        target = RunDir(dest)
        dest.mkdir(parents=True, exist_ok=True)
        target.write_json("metrics.json", result)
        plot_confusion_matrix(metrics["confusion_matrix"], classifier.labels,
                              target.sub("plots") / "confusion_matrix.png",
                              title=f"Confusion matrix: {data} ({len(y)} texts)")
        pred = probs.argmax(-1)
        target.write_text("eval_predictions.tsv", "id\tlabel\tprediction\n" + "".join(
            f"{i}\t{classifier.labels[a]}\t{classifier.labels[b]}\n" for i, a, b in zip(split.items.ids, y, pred)))
        if split.failures:
            target.write_text("eval_skipped.tsv", "".join(f"{i}\t{e}\n" for i, e in split.failures))
    return result
