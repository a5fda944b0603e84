"""Warm starts (`--init-from`): the trained model a new run starts from, and the architecture check.

A source is a bundled model's name, a run directory or a `.keras` file of the same task; the run takes
over its weights (and, per task, its tokenizer and labels). Anything else is a one-line UsageError.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorium.runtime.errors import UsageError

log = logging.getLogger(__name__)


@dataclass
class InitSource:
    """A loaded warm-start model: the Keras model, its metadata (`labels`, `info`) and where it came from."""

    name: str  # as the user gave it
    model: Any
    meta: dict[str, Any]
    keras_path: Path
    run_dir: Path | None  # the run directory, when the source is one (its config.json is there)

    @property
    def labels(self) -> list[str]:
        return list(self.meta.get("labels") or [])

    @property
    def info(self) -> dict[str, Any]:
        return dict(self.meta.get("info") or {})


def load_init_source(name: str, task: str, what: str) -> InitSource:
    """The `task` model named by `--init-from NAME` (`what` names it in errors, e.g. "translator")."""
    from sensorium.pipelines.common.artifacts import inspect_artifact, load_task_model
    from sensorium.runtime.predictor import BUNDLED, bundled_model

    path = Path(name).expanduser()
    if not path.exists() and name in BUNDLED:
        path = bundled_model(task, name)[1]
    artifact = inspect_artifact(path)
    if artifact.kind not in ("run", "keras"):
        raise UsageError(f"--init-from {name}: give a {what}'s run directory or .keras file, not a {artifact.kind}")
    model, meta = load_task_model(artifact.keras_path, task)
    run_dir = artifact.path if artifact.kind == "run" else None
    return InitSource(name, model, meta, artifact.keras_path, run_dir)


def check_same_architecture(model: Any, other: Any, source: str) -> None:
    """A UsageError in one line unless `other` has `model`'s weights, shape for shape."""
    mine, theirs = model.weights, other.weights
    if len(mine) != len(theirs):
        raise UsageError(f"--init-from {source}: its architecture differs ({len(theirs)} weight tensors, this "
                         f"config builds {len(mine)}); use its model settings or train from scratch")
    for a, b in zip(mine, theirs):
        if tuple(a.shape) != tuple(b.shape):
            raise UsageError(f"--init-from {source}: its architecture differs ({a.path}: {tuple(b.shape)} there, "
                             f"{tuple(a.shape)} here); use its model settings or train from scratch")


def warm_start(model: Any, source: InitSource) -> None:
    """Copy `source`'s weights into `model` (same architecture, checked first)."""
    check_same_architecture(model, source.model, source.name)
    model.set_weights(source.model.get_weights())
    log.info("warm start from %s", source.name)
