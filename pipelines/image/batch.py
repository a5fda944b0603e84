"""Batch evaluation of an image classifier: items are image paths (or arrays of builtin and TFDS data)
with their class; each is decoded when its batch runs, so an unreadable image fails alone."""
from __future__ import annotations

from typing import Any

import numpy as np

from sensorium.pipelines.batch.classification import ClassificationBatchTask, probability_fields
from sensorium.pipelines.batch.task import EvalItem, ItemList
from sensorium.pipelines.common.artifacts import Artifact
from sensorium.pipelines.common.dataspec import parse_spec
from sensorium.runtime.errors import ModelError
from sensorium.runtime.image import ImageClassifier

TASK = ImageClassifier.task


class ImageBatchTask(ClassificationBatchTask):
    task = TASK
    kind = "image"

    def list_items(self, artifact: Artifact, data: str | None) -> ItemList:
        from sensorium.pipelines.common.evaluation import evaluation_setup
        from sensorium.pipelines.image.config import DataConfig, ImageClassificationConfig
        from sensorium.pipelines.image.data import _align, _items_for, load_split

        setup = evaluation_setup(artifact.path, TASK, ImageClassificationConfig, DataConfig, data, None)
        labels = artifact.labels
        if not labels:
            raise ModelError(f"{artifact.path}: the model carries no class labels")
        self.context["labels"] = list(labels)
        spec = parse_spec(setup.data)
        if spec.kind == "tfds":  # decoded (and resized) by TFDS: the arrays are the items
            size = tuple(self.context.setdefault("image_size", _model_size(artifact)))
            split = load_split(spec, setup.data_config, seed=setup.seed, image_size=size, default_split="test",
                               label_names=list(labels))
            if split.x is None:
                raise ModelError(f"{spec.text}: too large to list in memory for a batch job; evaluate a slice "
                                 "(e.g. @test[:50%]) per job")
            items = [EvalItem(i, split.ids[i], split.x[i], labels[int(split.y[i])]) for i in range(len(split.ids))]
            return ItemList(spec.text, split.split, items, list(split.failures))
        listed, split_name = _items_for(spec, setup.data_config, setup.seed, "test")
        listed = _align(listed, list(labels))
        items = [EvalItem(i, listed.ids[i], listed.refs[i], labels[int(listed.labels[i])]) for i in range(len(listed))]
        return ItemList(spec.text, split_name, items)

    def load_model(self, artifact: Artifact) -> Any:
        from sensorium.pipelines.image.predict import load

        classifier = load(artifact)
        if list(classifier.labels) != self.labels:
            raise ModelError(f"{artifact.path}: its labels differ from the job's")
        self.context["image_size"] = list(classifier.image_size)
        return classifier

    def load(self, item: EvalItem) -> np.ndarray:
        """RGB uint8 (H, W, 3) at the model's input size."""
        from sensorium.runtime.image_io import load_image

        size = tuple(self.context["image_size"])
        if isinstance(item.payload, np.ndarray):
            img = np.asarray(item.payload)
            if img.ndim == 2 or (img.ndim == 3 and img.shape[-1] == 1):
                img = np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=-1)
            if img.shape[:2] != size:
                from PIL import Image

                img = np.asarray(Image.fromarray(img.astype(np.uint8)).resize((size[1], size[0]), Image.BILINEAR))
            return img.astype(np.uint8)
        return load_image(item.payload, size=size)

    def predict(self, model: Any, inputs: list[np.ndarray]) -> list[dict[str, Any]]:
        return probability_fields(self.labels, model.predict(np.stack(inputs)))


def _model_size(artifact: Artifact) -> list[int]:
    """The model's input size from its metadata (for TFDS data, resized while listing)."""
    info = artifact.info or {}
    size = (info.get("input") or {}).get("image_size") or info.get("image_size")
    if size is None and artifact.run is not None:
        size = (artifact.run.read_config().get("model") or {}).get("image_size")
    return [int(size[0]), int(size[1])] if size else [224, 224]


__all__ = ["ImageBatchTask"]
