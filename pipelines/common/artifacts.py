"""What a model path is (run directory, .keras file, SavedModel, .tflite) and which task it serves.

Inspection imports no TensorFlow: a `.keras` file is a zip whose config.json names our TaskMetadata
layer, a SavedModel carries `assets/sensorium.json`, a run directory its manifest.
"""
from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sensorium.pipelines.common.rundir import RunDir
from sensorium.runtime.errors import ModelError

C = TypeVar("C")
P = TypeVar("P")
KIND_NAMES = {"run": "run directory", "keras": ".keras file", "saved_model": "SavedModel", "tflite": ".tflite file"}


@dataclass
class Artifact:
    kind: str  # "run" | "keras" | "saved_model" | "tflite"
    path: Path
    task: str | None
    labels: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    run: RunDir | None = None

    @property
    def keras_path(self) -> Path:
        return self.run.model_path if self.run is not None else self.path


def _keras_metadata(path: Path) -> dict[str, Any] | None:
    """The TaskMetadata layer's config inside a .keras zip, without loading the model."""
    try:
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ModelError(f"{path}: not a valid .keras model file ({exc})") from None
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            registered = str(node.get("registered_name", ""))
            if node.get("class_name") == "TaskMetadata" or registered.endswith(">TaskMetadata"):
                found.append(node.get("config", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found[-1] if found else None


def inspect_artifact(path: str | Path, *, require_complete: bool = True) -> Artifact:
    """Identify a model artifact; fails with one line for anything unusable."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{path}: no such model file or folder")
    if path.is_dir() and RunDir.is_run_dir(path):
        run = RunDir(path)
        manifest = run.require_complete() if require_complete else run.read_manifest()
        labels = run.read_labels() if run.labels_path.is_file() else None
        return Artifact("run", path, manifest["task"], labels, manifest, run)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        meta_file = path / "assets" / "sensorium.json"
        meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
        labels_file = path / "assets" / "labels.txt"
        labels = labels_file.read_text(encoding="utf-8").splitlines() if labels_file.is_file() else meta.get("labels")
        return Artifact("saved_model", path, meta.get("task"), labels, meta)
    if path.is_file() and path.suffix == ".keras":
        meta = _keras_metadata(path)
        if meta is None:
            return Artifact("keras", path, None)
        return Artifact("keras", path, meta.get("task"), meta.get("labels"), meta.get("info") or {})
    if path.is_file() and path.suffix == ".tflite":
        from sensorium.runtime.tflite import AssociatedFilesError, read_all, read_manifest

        try:
            files = read_all(path)
            meta = read_manifest(files) if files else {}
        except (AssociatedFilesError, OSError) as exc:
            raise ModelError(f"{path}: {exc}") from None
        labels = files["labels.txt"].decode("utf-8").splitlines() if "labels.txt" in files else meta.get("labels")
        return Artifact("tflite", path, meta.get("task"), labels, meta)
    if path.is_dir():
        raise ModelError(f"{path}: not a run directory (no sensorium.json) and not a SavedModel")
    raise ModelError(f"{path}: not a model (expected a run directory, .keras, SavedModel folder or .tflite)")


def require_task(artifact: Artifact, task: str) -> Artifact:
    if artifact.task is not None and artifact.task != task:
        raise ModelError(f"{artifact.path} is a '{artifact.task}' model, not '{task}'")
    return artifact


def load_keras(path: Path):
    """`keras.saving.load_model(path, safe_mode=True)` with our layers registered; one-line errors."""
    import keras

    import sensorium.models.backbones.hub  # noqa: F401  (registers our serialisable layers: the hub
    import sensorium.models.blocks  # noqa: F401  backbone and the blocks, and the subclassed
    import sensorium.models.gan  # noqa: F401  generative models)
    import sensorium.models.vae  # noqa: F401

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"{path}: cannot load the model ({first[:300]})") from None


def load_task_model(path: Path, task: str) -> tuple[Any, dict[str, Any]]:
    """`load_keras(path)` and its TaskMetadata ({"task", "labels", "info"}); a ModelError unless it is
    a Sensorium `task` model."""
    from sensorium.models.blocks.metadata import read_task_metadata

    model = load_keras(path)
    meta = read_task_metadata(model)
    if meta is None or meta["task"] != task:
        raise ModelError(f"{path}: not a Sensorium {task} model")
    meta["info"] = dict(meta.get("info") or {})
    return model, meta


def run_config(artifact: Artifact, config_cls: type[C]) -> C | None:
    """The resolved config of the run behind `artifact` (its config.json), or None outside a run."""
    from sensorium.pipelines.common.config import config_from_dict

    if artifact.run is None or not artifact.run.config_path.is_file():
        return None
    return config_from_dict(config_cls, artifact.run.read_config())


def load_predictor(model: Artifact | str | Path, predictor: type[P], *, keras: Callable[[Artifact], P],
                   saved_model: Callable[[Artifact], P] | None = None) -> P:
    """The Keras back ends' one artifact dispatch: a run directory or `.keras` file -> `keras(artifact)`,
    a SavedModel -> `saved_model(artifact)`, a `.tflite` -> the runtime's `predictor.from_tflite`.
    The artifact must serve `predictor.task`; the TensorFlow back ends need sensorium[full]."""
    from sensorium.pipelines.common.backend import require_tensorflow

    artifact = model if isinstance(model, Artifact) else inspect_artifact(model)
    require_task(artifact, predictor.task)
    if artifact.kind == "tflite":
        return predictor.from_tflite(artifact.path)
    require_tensorflow(f"a {predictor.task} model in a {KIND_NAMES[artifact.kind]}")
    if artifact.kind == "saved_model":
        if saved_model is None:
            raise ModelError(f"{artifact.path}: {predictor.task} SavedModels are not supported here; give the run "
                             "directory or the .tflite")
        return saved_model(artifact)
    return keras(artifact)
