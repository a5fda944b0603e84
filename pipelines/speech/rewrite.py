"""Rewrite what a trained speech run's model records (its metadata layer's info), weights unchanged.

Used by the modules that add or replace a record in a trained run (one trained before the record
existed, or a user's own): `language_model`, `tail_silence`; `sensorium export` then carries it into the
run's exports.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def rewrite_run_info(model: str | Path, what: str, update: Callable[[dict[str, Any], Any], dict[str, Any]]) -> Path:
    """Load the speech run `model`'s model.keras, replace its metadata info by `update(info, artifact)`,
    and save it atomically; returns the model's path. `what` names the record in error messages."""
    from sensorium.models.blocks.metadata import TaskMetadata
    from sensorium.pipelines.common.artifacts import inspect_artifact, load_keras, require_task
    from sensorium.runtime.atomic import atomic_path
    from sensorium.runtime.errors import ModelError

    artifact = require_task(inspect_artifact(model), "speech")
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


def training_split(artifact: Any, model: str | Path, hint: str) -> tuple[Any, Any]:
    """(the run's training split (`SpeechSplit`), read as its config.json says, and that config); a
    ModelError naming `hint` (what to pass instead) when the run has no config."""
    from sensorium.pipelines.common.artifacts import run_config
    from sensorium.pipelines.speech.config import SpeechConfig
    from sensorium.pipelines.speech.data import load_train_validation
    from sensorium.runtime.errors import ModelError

    cfg = run_config(artifact, SpeechConfig)
    if cfg is None:
        raise ModelError(f"{model}: no config.json to find its training data; {hint}")
    train_split, _ = load_train_validation(cfg.data, seed=cfg.seed, model_spec=cfg.model)
    return train_split, cfg
