"""Rewrite what a trained run's model records (its metadata layer's info), weights unchanged.

Used by the modules that add or replace a record in a trained run (one trained before the record
existed, or a user's own): speech's `language_model` and `tail_silence`, sentiment's `long_text`;
`sensorium export` then carries it into the run's exports.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def rewrite_run_info(model: str | Path, task: str, what: str,
                     update: Callable[[dict[str, Any], Any], dict[str, Any]]) -> Path:
    """Load the `task` run `model`'s model.keras, replace its metadata info by `update(info, artifact)`,
    and save it atomically; returns the model's path. `what` names the record in error messages."""
    from sensorium.models.blocks.metadata import TaskMetadata
    from sensorium.pipelines.common.artifacts import inspect_artifact, load_keras, require_task
    from sensorium.runtime.atomic import atomic_path
    from sensorium.runtime.errors import ModelError

    artifact = require_task(inspect_artifact(model), task)
    if artifact.run is None:
        raise ModelError(f"{model}: recording {what} needs a run directory (its model is rewritten)")
    keras_model = load_keras(artifact.run.model_path)
    layer = next((x for x in keras_model.layers if isinstance(x, TaskMetadata)), None)
    if layer is None:
        raise ModelError(f"{model}: its model has no Sensorium metadata layer")
    layer.info = update(dict(layer.info), artifact)
    with atomic_path(artifact.run.model_path) as tmp:
        keras_model.save(tmp)
    return artifact.run.model_path
