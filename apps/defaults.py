"""The bundled default models (committed run directories under sensorium.assets)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from sensorium.runtime.errors import ModelError

BUNDLED = {"image": "models/mnist", "speech": "models/speech", "sentiment": "models/sentiment",
           "translation": "models/translation"}


def assets_dir() -> Path:
    return Path(str(resources.files("sensorium.assets")))


def default_model(task: str) -> Path:
    """The bundled model of `task`, or a ModelError saying there is none."""
    if task not in BUNDLED:
        raise ModelError(f"no bundled default model for '{task}'; pass --model")
    path = assets_dir() / BUNDLED[task]
    if not path.is_dir():
        raise ModelError(f"the bundled {task} model is missing from this installation ({path}); pass --model")
    return path
