"""Batch evaluation of a sentiment / text classifier: items are the texts of a data spec with their
labels; metrics are the classifier metrics plus positive-vs-negative accuracy, reported by class and
by text length."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.batch.classification import ClassificationBatchTask, probability_fields, records_to_arrays
from sensorium.pipelines.batch.task import EvalItem, ItemList, markdown_table
from sensorium.pipelines.common.artifacts import Artifact
from sensorium.runtime.errors import ModelError
from sensorium.runtime.sentiment import TextClassifier

TASK = TextClassifier.task
LENGTH_BUCKETS = ((1, 5), (6, 10), (11, 20), (21, 40), (41, None))  # words per text


def length_bucket(words: int, buckets: tuple[tuple[int, int | None], ...] = LENGTH_BUCKETS) -> str:
    """`6-10` for 7 words with the default buckets; the last bucket is open (`41+`)."""
    for low, high in buckets:
        if high is None or words <= high:
            return f"{low}+" if high is None else (f"{low}" if low == high else f"{low}-{high}")
    return "?"


class SentimentBatchTask(ClassificationBatchTask):
    task = TASK
    kind = "text"

    def top_k(self) -> int:
        return max(1, min(int(self.options.get("top_k", 5)), len(self.labels) - 1))

    def list_items(self, artifact: Artifact, data: str | None) -> ItemList:
        from sensorium.pipelines.common.evaluation import evaluation_setup
        from sensorium.pipelines.sentiment.config import SentimentConfig, TextDataConfig
        from sensorium.pipelines.sentiment.data import load_text_split

        setup = evaluation_setup(artifact.path, TASK, SentimentConfig, TextDataConfig, data, None)
        labels = artifact.labels
        if not labels:
            raise ModelError(f"{artifact.path}: the model carries no labels")
        self.context["labels"] = list(labels)
        split = load_text_split(setup.data, setup.data_config, seed=setup.seed, default_split="test",
                                label_names=list(labels))
        it = split.items
        items = [EvalItem(i, it.ids[i], it.texts[i], labels[int(it.labels[i])]) for i in range(len(it))]
        return ItemList(setup.data, split.split, items, list(split.failures))

    def load_model(self, artifact: Artifact) -> Any:
        from sensorium.pipelines.sentiment.predict import load

        classifier = load(artifact)
        if list(classifier.labels) != self.labels:
            raise ModelError(f"{artifact.path}: its labels differ from the job's")
        return classifier

    def load(self, item: EvalItem) -> str:
        return str(item.payload)

    def predict(self, model: Any, inputs: list[str]) -> list[dict[str, Any]]:
        fields = probability_fields(self.labels, model.predict(inputs))
        for f, text in zip(fields, inputs):
            f["words"] = len(text.split())
        return fields

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        from sensorium.pipelines.sentiment.evaluate import polarity_accuracy

        metrics = super().metrics(records)
        y, probs = records_to_arrays(records, self.labels)
        metrics.update(polarity_accuracy(y, probs, self.labels) or {})
        return metrics

    def report(self, records: list[dict[str, Any]], metrics: dict[str, Any], dest: Path) -> list[str]:
        from sensorium.pipelines.common.reports import plot_bars

        lines = super().report(records, metrics, dest)
        groups: dict[str, list[bool]] = {}
        for r in records:
            groups.setdefault(length_bucket(int(r.get("words", 0))), []).append(r["label"] == r["reference"])
        order = [length_bucket(low) for low, _ in LENGTH_BUCKETS if length_bucket(low) in groups]
        acc = {k: float(np.mean(groups[k])) for k in order}
        plot_bars(acc, dest / "plots" / "accuracy_by_length.png", title="Accuracy by text length (words)",
                  ylabel="accuracy", counts={k: len(groups[k]) for k in order})
        lines += ["", "## By length", "", "![accuracy by length](plots/accuracy_by_length.png)", ""]
        lines += markdown_table(["words", "texts", "accuracy"], [[k, len(groups[k]), acc[k]] for k in order])
        return lines


__all__ = ["SentimentBatchTask", "length_bucket"]
