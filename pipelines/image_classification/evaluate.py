"""Evaluate an image classifier on a data spec: accuracy, top-k, per-class P/R/F1, confusion matrix."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.artifacts import inspect_artifact, require_task, run_config
from sensorium.pipelines.common.dataspec import parse_spec
from sensorium.pipelines.common.errors import UsageError
from sensorium.pipelines.common.rundir import RunDir

log = logging.getLogger(__name__)

TASK = "image"


def evaluate(model_path: str | Path, data: str | None = None, *, out: str | Path | None = None,
             batch_size: int = 64, top_k: int = 5, require_complete: bool = True) -> dict[str, Any]:
    """Evaluate and write `metrics.json` + `plots/confusion_matrix.png` (into the run directory, or
    `out`). Returns the metrics.json object."""
    from sensorium.pipelines.common.metrics import classification_metrics
    from sensorium.pipelines.common.reports import plot_confusion_matrix
    from sensorium.pipelines.image_classification.config import DataConfig, ImageClassificationConfig
    from sensorium.pipelines.image_classification.data import load_split
    from sensorium.pipelines.image_classification.predict import ImageClassifier

    artifact = require_task(inspect_artifact(model_path, require_complete=require_complete), TASK)
    classifier = ImageClassifier.from_artifact(artifact)
    run_cfg = run_config(artifact, ImageClassificationConfig)
    seed, data_cfg = (run_cfg.seed, run_cfg.data) if run_cfg is not None else (42, DataConfig())
    data = data or (run_cfg.data.spec if run_cfg is not None else None)
    if not data:
        raise UsageError("--data is required for a model outside a run directory")
    spec = parse_spec(data)
    split = load_split(spec, data_cfg, seed=seed, image_size=classifier.image_size,
                       default_split="test", label_names=classifier.labels)
    probs = classifier.predict_batches(split.dataset(batch_size).map(lambda x, y: x))  # (N, C)
    y = split.y if split.y is not None and len(split.y) == len(probs) else np.concatenate(
        [b for _, b in split.dataset(batch_size).as_numpy_iterator()])
    metrics = classification_metrics(y, probs, classifier.labels, top_k=top_k)
    if split.failures:
        metrics["skipped"] = len(split.failures)
    result = {"task": TASK, "data": spec.text, "split": split.split, "count": int(len(y)), "metrics": metrics}
    dest = Path(out) if out else (artifact.run.path if artifact.run is not None else None)
    if dest is not None:
        target = RunDir(dest)
        dest.mkdir(parents=True, exist_ok=True)
        target.write_json("metrics.json", result)
        plot_confusion_matrix(metrics["confusion_matrix"], classifier.labels,
                              target.sub("plots") / "confusion_matrix.png",
                              title=f"Confusion matrix: {spec.text} ({len(y)} images)")
        if split.failures:
            target.write_text("eval_skipped.tsv", "".join(f"{i}\t{e}\n" for i, e in split.failures))
    return result
