"""The batch side shared by the classifiers (image, sentiment): records with the predicted label and
the probabilities, `classification_metrics` over them, a confusion matrix, F1 by class and the most
confident mistakes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.batch.task import BatchTask, markdown_table
from sensorium.runtime.errors import DataError

WORST_LISTED = 20


def probability_fields(labels: list[str], probs: np.ndarray) -> list[dict[str, Any]]:
    """Per row of probabilities (N, C): the predicted label, its score and all probabilities (label order)."""
    p = np.asarray(probs, dtype=np.float32)
    best = p.argmax(axis=1)
    return [{"label": labels[int(b)], "score": float(row[b]), "probabilities": row.tolist()}
            for row, b in zip(p, best)]


def records_to_arrays(records: list[dict[str, Any]], labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(true class indices (N,), probabilities (N, C)) from successful records."""
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted({str(r["reference"]) for r in records} - set(index))
    if unknown:
        raise DataError(f"references the model's labels do not have: {', '.join(unknown[:10])}")
    y = np.asarray([index[r["reference"]] for r in records], dtype=np.int64)
    probs = np.asarray([r["probabilities"] for r in records], dtype=np.float32).reshape(len(records), len(labels))
    return y, probs


class ClassificationBatchTask(BatchTask):
    """Image and text classifiers. `context["labels"]` is the model's label list."""

    @property
    def labels(self) -> list[str]:
        return list(self.context["labels"])

    def top_k(self) -> int:
        return max(1, int(self.options.get("top_k", 5)))

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        from sensorium.pipelines.common.metrics import classification_metrics

        y, probs = records_to_arrays(records, self.labels)
        return classification_metrics(y, probs, self.labels, top_k=min(self.top_k(), len(self.labels)))

    def report(self, records: list[dict[str, Any]], metrics: dict[str, Any], dest: Path) -> list[str]:
        from sensorium.pipelines.common.reports import plot_bars, plot_confusion_matrix

        plots = dest / "plots"
        plots.mkdir(parents=True, exist_ok=True)
        plot_confusion_matrix(metrics["confusion_matrix"], self.labels, plots / "confusion_matrix.png",
                              title=f"Confusion matrix ({len(records)} {self.kind}s)")
        plot_bars({k: v["f1"] for k, v in metrics["per_class"].items()}, plots / "f1_by_class.png",
                  title="F1 by class", ylabel="F1")
        rows = [[k, v["precision"], v["recall"], v["f1"], v["support"]] for k, v in metrics["per_class"].items()]
        lines = ["## By class", "", "![confusion matrix](plots/confusion_matrix.png)", "",
                 "![F1 by class](plots/f1_by_class.png)", ""]
        lines += markdown_table(["class", "precision", "recall", "F1", "support"], rows)
        wrong = [r for r in records if r["label"] != r["reference"]]
        wrong.sort(key=lambda r: (-r["score"], r["index"]))
        lines += ["", f"## Most confident mistakes ({len(wrong)} mistakes in all)", ""]
        lines += markdown_table(["id", "true", "predicted", "score"],
                                [[r["id"], r["reference"], r["label"], r["score"]] for r in wrong[:WORST_LISTED]])
        return lines


__all__ = ["ClassificationBatchTask", "probability_fields", "records_to_arrays"]
