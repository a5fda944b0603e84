"""Self-describing models: an identity layer that carries task name, labels and info in its config."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

import keras


@keras.saving.register_keras_serializable(package="sensorium")
class TaskMetadata(keras.layers.Layer):
    """Identity layer placed last in a task model; its config makes a ``.keras`` file self-describing.

    Args:
        task: task name, e.g. "image", "speech", "text".
        labels: class labels in output order, or None.
        info: any JSON-serialisable dict (image size, sample rate, vocabulary file, ...).

    ``call(x)`` returns ``x`` unchanged: no cast (also under mixed precision), no ops.
    Read it back with :func:`read_task_metadata`.
    """

    def __init__(
        self,
        task: str,
        labels: Sequence[str] | None = None,
        info: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(task, str) or not task:
            raise ValueError(f"task must be a non-empty string, got {task!r}")
        self.task = task
        self.labels = None if labels is None else [str(label) for label in labels]
        info = {} if info is None else dict(info)
        try:
            # Round trip through JSON now so what is read back later is exactly what is stored.
            self.info = json.loads(json.dumps(info))
        except (TypeError, ValueError) as err:
            raise ValueError(f"info must be JSON-serialisable: {err}") from err
        # Pass inputs through untouched: no autocast to the compute dtype (float32 stays float32).
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.supports_masking = True

    def call(self, x):
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, x) -> keras.KerasTensor:
        # Same shape and dtype as the input (the default spec would use the compute dtype).
        return keras.KerasTensor(x.shape, dtype=x.dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(task=self.task, labels=copy.copy(self.labels), info=copy.deepcopy(self.info))
        return config


def read_task_metadata(model: keras.Model | keras.layers.Layer) -> dict[str, Any] | None:
    """Return ``{"task", "labels", "info"}`` from the model's TaskMetadata layer, or None if it has none.

    Nested models are searched too; the first TaskMetadata found (depth first, in layer order) wins.
    """
    if isinstance(model, TaskMetadata):
        return {"task": model.task, "labels": copy.copy(model.labels), "info": copy.deepcopy(model.info)}
    for layer in getattr(model, "layers", ()):
        found = read_task_metadata(layer)
        if found is not None:
            return found
    return None
