"""Evaluate an image classifier on a data spec: accuracy, top-k, per-class P/R/F1, confusion matrix."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.dataspec import parse_spec
from sensorium.runtime.image import ImageClassifier

log = logging.getLogger(__name__)

TASK = ImageClassifier.task


def evaluate(model_path: str | Path, data: str | None = None, *, out: str | Path | None = None,
             batch_size: int = 64, top_k: int = 5, require_complete: bool = True) -> dict[str, Any]:
    """Evaluate and write `metrics.json` + `plots/confusion_matrix.png` into `out`, else where
    `evaluation.destination` says (a finished run: `RUN/evaluations/<data>/`; a bare model file: nowhere).
    Returns the metrics.json object."""
    from sensorium.pipelines.common.evaluation import evaluation_setup, write_classification_evaluation
    from sensorium.pipelines.common.metrics import classification_metrics
    from sensorium.pipelines.image.config import DataConfig, ImageClassificationConfig
    from sensorium.pipelines.image.data import load_split
    from sensorium.pipelines.image.predict import load

    setup = evaluation_setup(model_path, TASK, ImageClassificationConfig, DataConfig, data, out,
                             require_complete=require_complete)
    classifier = load(setup.artifact)
    spec = parse_spec(setup.data)
    split = load_split(spec, setup.data_config, seed=setup.seed, image_size=classifier.image_size,
                       default_split="test", label_names=classifier.labels)
    probs = classifier.predict_batches(split.dataset(batch_size).map(lambda x, y: x))  # (N, C)
    y = split.y if split.y is not None and len(split.y) == len(probs) else np.concatenate(
        [b for _, b in split.dataset(batch_size).as_numpy_iterator()])
    metrics = classification_metrics(y, probs, classifier.labels, top_k=top_k)
    if split.failures:
        metrics["skipped"] = len(split.failures)
    result = {"task": TASK, "data": spec.text, "split": split.split, "count": int(len(y)), "metrics": metrics}
    if setup.dest is not None:
        write_classification_evaluation(setup.dest, result, classifier.labels, failures=split.failures,
                                        title=f"Confusion matrix: {spec.text} ({len(y)} images)")
    return result
